use super::*;
use std::sync::{Arc, Barrier};

/// A fresh directory under the system temp dir, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("glassbox-history-{}-{nanos}-{n}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// A history file in a directory that does not exist yet.
    fn history(&self) -> PathBuf {
        self.0.join("history").join("history.jsonl")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn inputs(entries: &[HistoryEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| match e {
            HistoryEntry::Input(_, _, i) => i.clone(),
            HistoryEntry::InputOutput(_, _, (i, _)) => i.clone(),
        })
        .collect()
}

/// Every line of the file, each of which must be a whole record.
fn lines(path: &Path) -> Vec<Record> {
    match fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a whole record ({e}): {l:.80}")))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn tail(h: &History, n: usize) -> Vec<String> {
    inputs(&h.query(&Query::Tail { n, output: false }))
}

#[test]
fn survives_restarts_as_new_sessions() {
    let scratch = Scratch::new();
    let path = scratch.history();
    let mut first = History::open(path.clone());
    first.record(1, "let a = 1;", "");
    first.record(2, "a + 1", "2");
    let mut second = History::open(path.clone());
    assert_eq!(second.session(), first.session() + 1);
    second.record(1, "6 * 7", "42");
    let tail = second.query(&Query::Tail { n: 2, output: true });
    assert_eq!(inputs(&tail), ["a + 1", "6 * 7"]);
    assert!(matches!(&tail[1], HistoryEntry::InputOutput(s, 1, (_, out)) if *s == second.session() && out == "42"));
    let previous = second.query(&Query::Range { session: Some(-1), start: 1, stop: Some(2), output: false });
    assert_eq!(inputs(&previous), ["let a = 1;"]);
}

#[test]
fn search_globs_dedupes_and_limits() {
    let scratch = Scratch::new();
    let mut h = History::open(scratch.history());
    for (i, code) in ["6 * 7", "let x = 6;", "6 * 7", "7 * 6", "6 * 7"].iter().enumerate() {
        h.record(i + 1, code, "");
    }
    let q = |pattern: &str, unique, n| Query::Search { pattern: pattern.into(), unique, n, output: false };
    assert_eq!(h.query(&q("6*", false, None)).len(), 3);
    assert_eq!(inputs(&h.query(&q("6*", true, None))), ["6 * 7"]);
    assert_eq!(h.query(&q("*", false, Some(2))).len(), 2);
    assert_eq!(inputs(&h.query(&q("let ? = 6;", false, None))), ["let x = 6;"]);
}

#[test]
fn clients_may_leave_fields_out() {
    let q: Query = serde_json::from_value(serde_json::json!({"hist_access_type": "search", "pattern": "a*"})).unwrap();
    assert_eq!(q, Query::Search { pattern: "a*".into(), unique: false, n: None, output: false });
    let q: Query = serde_json::from_value(serde_json::json!({"hist_access_type": "range", "raw": true})).unwrap();
    assert!(matches!(q, Query::Range { session: None, start: 0, stop: None, output: false }));
}

#[test]
fn files_are_created_private() {
    let scratch = Scratch::new();
    let path = scratch.history();
    let mut h = History::open(path.clone());
    h.record(1, "let secret = 1;", "");
    let dir = path.parent().unwrap();
    assert_eq!(mode(dir), 0o700);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.join("history.lock")), 0o600);
}

#[test]
fn wider_permissions_found_are_narrowed() {
    let scratch = Scratch::new();
    let path = scratch.history();
    let dir = path.parent().unwrap();
    fs::create_dir(dir).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    let old = dir.join("history.1.jsonl");
    for file in [&path, &old] {
        fs::write(file, "{\"session\":1,\"line\":1,\"input\":\"x\"}\n").unwrap();
        fs::set_permissions(file, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let h = History::open(path.clone());
    assert_eq!((mode(dir), mode(&path), mode(&old)), (0o700, 0o600, 0o600));
    assert_eq!(h.session(), 2);
}

#[test]
fn only_the_history_dir_is_narrowed_in_the_cache() {
    let scratch = Scratch::new();
    let cache = scratch.0.join("cache");
    fs::create_dir_all(cache.join("data")).unwrap();
    for d in [&cache, &cache.join("data")] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut h = History::open_in_cache(&cache);
    h.record(1, "1", "1");
    assert_eq!(mode(&cache.join("history")), 0o700);
    assert_eq!(mode(&cache.join("history").join("history.jsonl")), 0o600);
    assert_eq!((mode(&cache), mode(&cache.join("data"))), (0o755, 0o755));
}

#[test]
fn a_history_from_before_is_moved_in_privately() {
    let scratch = Scratch::new();
    let cache = scratch.0.join("cache");
    fs::create_dir_all(&cache).unwrap();
    let legacy = cache.join("history.jsonl");
    fs::write(&legacy, "{\"session\":3,\"line\":1,\"input\":\"old cell\",\"output\":\"\"}\n").unwrap();
    fs::set_permissions(&legacy, fs::Permissions::from_mode(0o644)).unwrap();
    let h = History::open_in_cache(&cache);
    assert_eq!(h.session(), 4);
    assert!(!legacy.exists());
    assert_eq!(mode(&cache.join("history").join("history.jsonl")), 0o600);
    let previous = h.query(&Query::Range { session: Some(-1), start: 0, stop: None, output: false });
    assert_eq!(inputs(&previous), ["old cell"]);
}

#[test]
fn rotation_bounds_the_files_and_keeps_recent_records() {
    let scratch = Scratch::new();
    let path = scratch.history();
    let old = path.with_file_name("history.1.jsonl");
    let mut h = History::open(path.clone());
    let output = "o".repeat(MAX_OUTPUT);
    // Over three generations' worth, so that rotation has replaced the generation before.
    let count = (3 * ROTATE_AT as usize) / MAX_OUTPUT + 10;
    for i in 1..=count {
        h.record(i, &format!("cell {i}"), &output);
        assert!(fs::metadata(&path).map(|m| m.len()).unwrap_or(0) <= ROTATE_AT);
    }
    assert!(fs::metadata(&old).unwrap().len() <= GENERATION_MAX);
    let files: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files.len(), 3, "live, previous generation and lock only: {files:?}");
    let kept = lines(&old).len() + lines(&path).len();
    assert!(kept < count && kept > ROTATE_AT as usize / MAX_OUTPUT, "{kept} of {count} kept");

    let last = format!("cell {count}");
    assert_eq!(tail(&h, 1), [last.as_str()]);
    let found = h.query(&Query::Search { pattern: "cell 1?".into(), unique: false, n: None, output: false });
    assert!(inputs(&found).iter().all(|i| i.len() == "cell 10".len()));
    assert_eq!(
        inputs(&h.query(&Query::Search { pattern: last.clone(), unique: false, n: None, output: false })),
        [last.as_str()]
    );
    let own = h.query(&Query::Range { session: None, start: count - 1, stop: None, output: true });
    assert_eq!(inputs(&own), [format!("cell {}", count - 1), last.clone()]);
    // Memory keeps what the disk keeps, not everything recorded.
    assert!(h.weight <= MEMORY_MAX && h.records.len() < count);

    let again = History::open(path);
    assert!(again.records.len() <= kept);
    let previous = again.query(&Query::Range { session: Some(-1), start: count, stop: None, output: false });
    assert_eq!(inputs(&previous), [last]);
}

#[test]
fn start_reads_a_bounded_tail_of_an_oversized_file() {
    let scratch = Scratch::new();
    let path = scratch.history();
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    // As an unbounded history from before rotation existed could be: 8 MiB in one file.
    let filler = "x".repeat(1000);
    let mut text = String::new();
    let mut n = 0;
    while text.len() < 8 << 20 {
        n += 1;
        text += &serde_json::to_string(&Record {
            session: 1,
            line: n,
            input: format!("{n} {filler}"),
            output: String::new(),
        })
        .unwrap();
        text.push('\n');
    }
    fs::write(&path, text).unwrap();
    let h = History::open(path.clone());
    assert!(h.weight <= GENERATION_MAX as usize && h.records.len() < n / 2);
    assert_eq!(h.records.back().unwrap().line, n);
    assert!(fs::metadata(&path).map(|m| m.len()).unwrap_or(0) <= ROTATE_AT);
}

#[test]
fn huge_cells_are_cut() {
    let scratch = Scratch::new();
    let path = scratch.history();
    let mut h = History::open(path.clone());
    let input = "é".repeat(MAX_INPUT); // two bytes each, so the bound falls inside a character
    let output = "ü".repeat(1 << 20);
    h.record(1, &input, &output);
    assert!(fs::metadata(&path).unwrap().len() < (MAX_INPUT + MAX_OUTPUT + 4 * CUT_NOTE_MAX) as u64);
    let [HistoryEntry::InputOutput(_, 1, (i, o))] = &h.query(&Query::Tail { n: 1, output: true })[..] else {
        panic!("one entry with output")
    };
    assert!(i.len() <= MAX_INPUT + CUT_NOTE_MAX && i.starts_with("éé") && i.ends_with("more bytes not kept]"));
    assert!(o.len() <= MAX_OUTPUT + CUT_NOTE_MAX && o.starts_with("üü"));
    assert_eq!(lines(&path)[0].output, *o);
}

#[test]
fn racing_opens_get_distinct_sessions() {
    let scratch = Scratch::new();
    let path = scratch.history();
    let (threads, opens) = (8, 25);
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (path, start) = (path.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                (0..opens).map(|_| History::open(path.clone()).session()).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut sessions: Vec<usize> = handles.into_iter().flat_map(|t| t.join().unwrap()).collect();
    sessions.sort();
    assert_eq!(sessions, (1..=threads * opens).collect::<Vec<_>>());
}

#[test]
fn a_session_that_recorded_nothing_is_not_handed_out_again() {
    let scratch = Scratch::new();
    let path = scratch.history();
    let quiet = History::open(path.clone());
    let next = History::open(path.clone());
    assert_ne!(quiet.session(), next.session());
    // Nor when the counter is lost: the sessions on disk still count.
    let mut third = History::open(path.clone());
    third.record(1, "1", "");
    fs::remove_file(path.with_file_name("history.lock")).unwrap();
    assert_eq!(History::open(path).session(), third.session() + 1);
}

#[test]
fn concurrent_appends_write_whole_lines() {
    let scratch = Scratch::new();
    let path = scratch.history();
    let per_kernel = 300;
    let start = Arc::new(Barrier::new(2));
    let run = |tag: char| {
        let (path, start) = (path.clone(), start.clone());
        std::thread::spawn(move || {
            let mut h = History::open(path);
            start.wait();
            // Below one generation in all, so that every line stays on disk to be counted.
            let body = tag.to_string().repeat(600);
            for i in 1..=per_kernel {
                h.record(i, &format!("{i} {body}"), &body);
            }
            h
        })
    };
    let (a, b) = (run('a'), run('b'));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    let on_disk = lines(&path);
    assert_eq!(on_disk.len(), 2 * per_kernel);
    for h in [&a, &b] {
        let mine: Vec<usize> = on_disk.iter().filter(|r| r.session == h.session()).map(|r| r.line).collect();
        assert_eq!(mine, (1..=per_kernel).collect::<Vec<_>>());
        // Each kernel sees its own session whole.
        let own = h.query(&Query::Range { session: None, start: 0, stop: None, output: false });
        assert_eq!(own.len(), per_kernel);
    }
}

#[test]
fn concurrent_appends_across_rotations_stay_whole() {
    let scratch = Scratch::new();
    let path = scratch.history();
    let start = Arc::new(Barrier::new(3));
    let kernels: Vec<_> = "xyz"
        .chars()
        .map(|tag| {
            let (path, start) = (path.clone(), start.clone());
            std::thread::spawn(move || {
                let mut h = History::open(path);
                start.wait();
                let body = tag.to_string().repeat(MAX_OUTPUT);
                for i in 1..=150 {
                    h.record(i, &body, &body);
                }
            })
        })
        .collect();
    for k in kernels {
        k.join().unwrap();
    }
    let old = path.with_file_name("history.1.jsonl");
    for file in [&path, &old] {
        assert!(fs::metadata(file).unwrap().len() <= GENERATION_MAX);
        for r in lines(file) {
            assert!(r.input.chars().all(|c| c == r.input.chars().next().unwrap()));
        }
    }
}

#[test]
fn appends_wait_for_the_lock() {
    let scratch = Scratch::new();
    let path = scratch.history();
    let mut h = History::open(path.clone());
    let other_kernel = File::open(path.with_file_name("history.lock")).unwrap();
    other_kernel.lock().unwrap();
    let writer = std::thread::spawn(move || {
        h.record(1, "x", "");
        h
    });
    std::thread::sleep(LOCK_WAIT / 10);
    assert!(lines(&path).is_empty(), "appended while another kernel held the lock");
    other_kernel.unlock().unwrap();
    writer.join().unwrap();
    assert_eq!(lines(&path).len(), 1);
}

#[test]
fn a_lock_held_too_long_costs_the_line_not_the_kernel() {
    let scratch = Scratch::new();
    let path = scratch.history();
    let mut h = History::open(path.clone());
    let other_kernel = File::open(path.with_file_name("history.lock")).unwrap();
    other_kernel.lock().unwrap();
    let start = Instant::now();
    h.record(1, "x", "");
    assert!(start.elapsed() < 2 * LOCK_WAIT);
    assert!(lines(&path).is_empty());
    assert_eq!(tail(&h, 1), ["x"]);
}
