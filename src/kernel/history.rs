//! Input history (messaging spec: `history_request` with tail, range and search), kept on disk
//! so it survives kernel restarts. Each kernel start is a new session; line numbers are
//! execution counts.
//!
//! What a user typed can hold secrets, and several kernels may run at once, so the store is:
//!
//! - private: it lives in a directory of its own (`<cache>/history/`, see
//!   [`History::open_in_cache`]) created 0700, its files are created 0600, and wider modes
//!   found at open are narrowed to those. Only that directory is narrowed, never the cache dir
//!   around it, which holds data that may be shared on purpose.
//! - bounded: the live file `history.jsonl` is renamed to `history.1.jsonl` (replacing the
//!   generation before) as soon as an append takes it past [`ROTATE_AT`], so at most two
//!   generations, about 2 MiB, are kept. A cell's input is cut to [`MAX_INPUT`] and its output
//!   to [`MAX_OUTPUT`] before it is stored. Opening reads at most the tail of each generation
//!   that a rotation could have left there, so start-up time does not grow with the history,
//!   and memory holds no more than that either.
//! - safe for concurrent kernels: handing out a session number, appending a line and rotating
//!   all happen under an advisory lock on `history.lock` (which also holds the last session
//!   number handed out, so a session that recorded nothing, or was rotated away, is never
//!   handed out again). A line is written with one append, after a newline if an interrupted
//!   writer left the file without one.
//!
//! A kernel answers queries from what it read at open plus its own records: lines that other
//! kernels append later are on disk but not seen until the next start (IPython behaves the
//! same way). When the store cannot be used (no writable cache dir, the lock held for more
//! than [`LOCK_WAIT`]), the history of the session is kept in memory only, with a warning.

use jupyter_protocol::HistoryEntry;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The live file is rotated once an append takes it past this many bytes.
pub const ROTATE_AT: u64 = 1 << 20;
/// A stored input is cut to about this many bytes (a cell this large is pasted data, not code
/// worth recalling whole).
pub const MAX_INPUT: usize = 64 << 10;
/// A stored output is cut to about this many bytes; history is for finding a cell again, not
/// for keeping its results.
pub const MAX_OUTPUT: usize = 8 << 10;
/// How long an operation waits for another kernel to release the lock before giving up on the
/// file (a kernel holds it only for one append, or for reading the bounded tail at open).
pub const LOCK_WAIT: Duration = Duration::from_secs(2);

/// The longest line one capped record can make: JSON writes a byte as at most six (`\u0000`).
const MAX_LINE: u64 = 6 * (MAX_INPUT + MAX_OUTPUT + 2 * CUT_NOTE_MAX) as u64 + 256;
/// What a generation can hold: rotation happens after the append that crosses `ROTATE_AT`.
const GENERATION_MAX: u64 = ROTATE_AT + MAX_LINE;
/// The most a kernel holds in memory, counted as input and output bytes: two generations.
const MEMORY_MAX: usize = 2 * GENERATION_MAX as usize;
/// Generous bound on the note that marks a cut (`… [N more bytes not kept]`).
const CUT_NOTE_MAX: usize = 64;
/// The session counter is written at a fixed width in one write, so it is never half there.
const COUNTER_WIDTH: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    session: usize,
    line: usize,
    input: String,
    #[serde(default)]
    output: String,
}

impl Record {
    /// What a record counts for against `MEMORY_MAX`.
    fn weight(&self) -> usize {
        self.input.len() + self.output.len() + 32
    }
}

/// What a client asks for. Read leniently (clients leave out fields the spec lists).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "hist_access_type", rename_all = "lowercase")]
pub enum Query {
    Tail {
        #[serde(default = "ten")]
        n: usize,
        #[serde(default)]
        output: bool,
    },
    Range {
        /// `None` or 0: this session; negative: that many sessions back.
        #[serde(default)]
        session: Option<i64>,
        #[serde(default)]
        start: usize,
        /// Exclusive; `None` or 0: to the end.
        #[serde(default)]
        stop: Option<usize>,
        #[serde(default)]
        output: bool,
    },
    Search {
        #[serde(default = "star")]
        pattern: String,
        #[serde(default)]
        unique: bool,
        #[serde(default)]
        n: Option<usize>,
        #[serde(default)]
        output: bool,
    },
}

fn ten() -> usize {
    10
}
fn star() -> String {
    "*".into()
}

pub struct History {
    /// `None` when the file could not be used: the session is then remembered in memory only.
    store: Option<Store>,
    session: usize,
    /// What was read at open, then this session's records, oldest first.
    records: VecDeque<Record>,
    /// Sum of the records' weights, kept under `MEMORY_MAX`.
    weight: usize,
}

impl History {
    /// The history kept in `<cache>/history/`. A history that earlier versions kept at
    /// `<cache>/history.jsonl` is moved in (and made private) the first time.
    pub fn open_in_cache(cache: &Path) -> Self {
        let path = cache.join("history").join("history.jsonl");
        let legacy = cache.join("history.jsonl");
        Self::open_with(path, Some(&legacy))
    }

    /// Opens the history file `path` and starts a new session in it. The directory holding it
    /// is made private (0700), so it should be one of its own (see [`History::open_in_cache`]).
    pub fn open(path: PathBuf) -> Self {
        Self::open_with(path, None)
    }

    fn open_with(path: PathBuf, legacy: Option<&Path>) -> Self {
        let (store, session, found) = match Store::open(path.clone(), legacy) {
            Ok(opened) => (Some(opened.store), opened.session, opened.records),
            Err(e) => {
                super::log(format_args!("history kept in memory only, {} not usable: {e}", path.display()));
                (None, 1, Vec::new())
            }
        };
        let mut history = History { store, session, records: VecDeque::new(), weight: 0 };
        for r in found {
            history.keep(r);
        }
        history
    }

    pub fn session(&self) -> usize {
        self.session
    }

    /// Stores one executed input (and its plain-text result) in this session, each cut to its
    /// bound.
    pub fn record(&mut self, line: usize, input: &str, output: &str) {
        let r = Record { session: self.session, line, input: cut(input, MAX_INPUT), output: cut(output, MAX_OUTPUT) };
        if let Some(store) = &self.store {
            if let Err(e) = store.append(&r) {
                super::log(format_args!("history not saved to {}: {e}", store.live.display()));
            }
        }
        self.keep(r);
    }

    /// Adds a record in memory, letting the oldest go once two generations' worth are held,
    /// as rotation does on disk.
    fn keep(&mut self, r: Record) {
        self.weight += r.weight();
        self.records.push_back(r);
        while self.weight > MEMORY_MAX && self.records.len() > 1 {
            let gone = self.records.pop_front().expect("more than one record");
            self.weight -= gone.weight();
        }
    }

    pub fn query(&self, q: &Query) -> Vec<HistoryEntry> {
        let (found, output): (Vec<&Record>, bool) = match q {
            Query::Tail { n, output } => (last(self.records.iter().collect(), *n), *output),
            Query::Range { session, start, stop, output } => {
                let s = match session {
                    None | Some(0) => self.session as i64,
                    Some(s) if *s < 0 => self.session as i64 + s,
                    Some(s) => *s,
                };
                let stop = stop.filter(|&s| s > 0).unwrap_or(usize::MAX);
                let hits = self.records.iter().filter(|r| r.session as i64 == s && r.line >= *start && r.line < stop);
                (hits.collect(), *output)
            }
            Query::Search { pattern, unique, n, output } => {
                let mut hits: Vec<&Record> = self.records.iter().filter(|r| glob(pattern, &r.input)).collect();
                if *unique {
                    // Keep the latest occurrence of each input, in history order.
                    let mut seen = std::collections::HashSet::new();
                    hits = hits.into_iter().rev().filter(|r| seen.insert(r.input.as_str())).collect();
                    hits.reverse();
                }
                (
                    match n {
                        Some(n) => last(hits, *n),
                        None => hits,
                    },
                    *output,
                )
            }
        };
        found
            .into_iter()
            .map(|r| match output {
                true => HistoryEntry::InputOutput(r.session, r.line, (r.input.clone(), r.output.clone())),
                false => HistoryEntry::Input(r.session, r.line, r.input.clone()),
            })
            .collect()
    }
}

/// The files of one history directory, and the lock that serialises kernels using them.
struct Store {
    /// `history.jsonl`: appended to.
    live: PathBuf,
    /// `history.1.jsonl`: the generation before.
    old: PathBuf,
    /// `history.lock`: locked around every read and write; holds the last session handed out.
    lock: File,
}

/// What opening finds: the store, the new session's number and the records kept so far.
struct Opened {
    store: Store,
    session: usize,
    records: Vec<Record>,
}

impl Store {
    fn open(live: PathBuf, legacy: Option<&Path>) -> io::Result<Opened> {
        let dir = match live.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        private_dir(&dir)?;
        let sibling = |suffix: &str| {
            let stem = live.file_stem().unwrap_or(live.as_os_str()).to_string_lossy();
            dir.join(format!("{stem}{suffix}"))
        };
        let ext = live.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
        let (old, lock_path) = (sibling(&format!(".1{ext}")), sibling(".lock"));
        let lock =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&lock_path)?;
        narrow(&lock, 0o600)?;
        let store = Store { live, old, lock };

        let (session, records) = {
            let _locked = store.locked()?;
            if let Some(legacy) = legacy.filter(|l| l.is_file()) {
                if !store.live.exists() {
                    fs::rename(legacy, &store.live)?;
                }
            }
            for path in [&store.live, &store.old] {
                match File::open(path) {
                    Ok(f) => narrow(&f, 0o600)?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            // A live file past its bound (one written before rotation existed) is rotated
            // now rather than read whole.
            if fs::metadata(&store.live).map(|m| m.len() > ROTATE_AT).unwrap_or(false) {
                fs::rename(&store.live, &store.old)?;
            }
            let mut records = read_tail(&store.old, GENERATION_MAX)?;
            records.extend(read_tail(&store.live, GENERATION_MAX)?);
            let seen = records.iter().map(|r| r.session).max().unwrap_or(0);
            let session = store.last_session().max(seen) + 1;
            store.set_last_session(session)?;
            (session, records)
        };
        Ok(Opened { store, session, records })
    }

    /// Appends one line, then rotates if the file has passed its bound.
    fn append(&self, r: &Record) -> io::Result<()> {
        let mut line = serde_json::to_vec(r).expect("records serialise");
        line.push(b'\n');
        let _locked = self.locked()?;
        let mut f = OpenOptions::new().read(true).append(true).create(true).mode(0o600).open(&self.live)?;
        let len = f.metadata()?.len();
        let mut last = [b'\n'];
        if len > 0 {
            f.read_exact_at(&mut last, len - 1)?;
        }
        if last[0] != b'\n' {
            // A writer stopped mid-line: end its line so that this one stays readable.
            line.insert(0, b'\n');
        }
        f.write_all(&line)?;
        if f.metadata()?.len() > ROTATE_AT {
            fs::rename(&self.live, &self.old)?;
        }
        Ok(())
    }

    /// Takes the lock, waiting at most `LOCK_WAIT` for another kernel to release it.
    fn locked(&self) -> io::Result<Locked<'_>> {
        let start = Instant::now();
        loop {
            match self.lock.try_lock() {
                Ok(()) => return Ok(Locked(&self.lock)),
                Err(TryLockError::WouldBlock) if start.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "another kernel holds the history lock"))
                }
                Err(TryLockError::Error(e)) => return Err(e),
            }
        }
    }

    /// The last session handed out (0 when none was, or the counter is unreadable).
    fn last_session(&self) -> usize {
        let mut text = [0u8; COUNTER_WIDTH];
        let n = self.lock.read_at(&mut text, 0).unwrap_or(0);
        std::str::from_utf8(&text[..n]).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
    }

    fn set_last_session(&self, session: usize) -> io::Result<()> {
        let text = format!("{session:0width$}\n", width = COUNTER_WIDTH - 1);
        self.lock.write_all_at(text.as_bytes(), 0)
    }
}

/// Holds the history lock until dropped.
struct Locked<'a>(&'a File);

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Creates `dir` 0700 (its parents as usual), or narrows it to 0700 if it exists wider.
fn private_dir(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {
            let mode = fs::metadata(dir)?.permissions().mode();
            if mode & 0o077 != 0 {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Takes group and other permissions away from an open file.
fn narrow(f: &File, mode: u32) -> io::Result<()> {
    if f.metadata()?.permissions().mode() & 0o077 != 0 {
        f.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// The records in the last `at_most` bytes of `path` (a first line cut by that bound is
/// skipped, as are lines that do not parse).
fn read_tail(path: &Path, at_most: u64) -> io::Result<Vec<Record>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let start = f.metadata()?.len().saturating_sub(at_most);
    // Read from the byte before `start`, so that a line beginning exactly at `start` is kept.
    let from = start.saturating_sub(1);
    f.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    f.take(at_most + 1).read_to_end(&mut bytes)?;
    let whole = match start {
        0 => &bytes[..],
        _ => bytes.iter().position(|&b| b == b'\n').map_or(&[][..], |i| &bytes[i + 1..]),
    };
    Ok(whole.split(|&b| b == b'\n').filter_map(|l| serde_json::from_slice(l).ok()).collect())
}

/// `text` if it fits in `max` bytes; else its first `max` bytes (to a character boundary)
/// and a note of how much was left out.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} more bytes not kept]", &text[..end], text.len() - end)
}

fn last(v: Vec<&Record>, n: usize) -> Vec<&Record> {
    let skip = v.len().saturating_sub(n);
    v.into_iter().skip(skip).collect()
}

/// Glob match over the whole input: `*` any run, `?` one character (as IPython's search).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests;
