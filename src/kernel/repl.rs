//! The Rust REPL: an evcxr [`CommandContext`] on a thread of its own, with the glassbox
//! prelude loaded. Cells run in evcxr's child process; their stdout and stderr stream out
//! through [`Forwarder`] while they run, and every line is handed over before a cell's
//! result is returned.

use super::execute::{media_from_mime_map, CellError, CellResult};
use crate::runtime::Event;
use crossbeam_channel::{select, Receiver, Sender};
use evcxr::{CommandContext, CompilationError, Error as EvcxrError};
use jupyter_protocol::Stdio;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Receives the cells' output text as it is written.
pub type StreamSink = Arc<dyn Fn(Stdio, String) + Send + Sync>;

/// What the REPL needs to start.
#[derive(Debug, Clone)]
pub struct ReplConfig {
    /// The glassbox crate the REPL depends on.
    pub glassbox_src: PathBuf,
    /// Root of the persistent evcxr build directories.
    pub cache_dir: PathBuf,
}

enum Job {
    Execute { code: String, done: Sender<CellResult> },
}

/// The kernel's handle on the REPL thread.
#[derive(Clone)]
pub struct Repl {
    jobs: Sender<Job>,
}

impl Repl {
    /// Starts the REPL thread. Returns at once: creating the context and compiling the
    /// prelude happen on that thread, so the kernel answers `kernel_info` meanwhile.
    pub fn spawn(config: ReplConfig, sink: StreamSink) -> Repl {
        let (jobs, rx) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("repl".into())
            .spawn(move || serve(config, sink, rx))
            .expect("spawn the REPL thread");
        Repl { jobs }
    }

    /// Runs a cell and waits for it; all its output has been sunk when this returns.
    pub fn execute(&self, code: &str) -> CellResult {
        let (done, result) = crossbeam_channel::bounded(1);
        let job = Job::Execute { code: code.to_owned(), done };
        if self.jobs.send(job).is_err() {
            return Err(dead_repl());
        }
        result.recv().unwrap_or_else(|_| Err(dead_repl()))
    }
}

fn dead_repl() -> CellError {
    CellError {
        ename: "ReplDied".into(),
        evalue: "the REPL thread has stopped; restart the kernel".into(),
        traceback: vec!["the REPL thread has stopped; restart the kernel".into()],
    }
}

fn serve(config: ReplConfig, sink: StreamSink, jobs: Receiver<Job>) {
    let mut state = match Session::start(&config, sink.clone()) {
        Ok(session) => Ok(session),
        Err(e) => Err(CellError {
            ename: "ReplStartError".into(),
            evalue: e.clone(),
            traceback: vec![format!("the Rust REPL could not start: {e}")],
        }),
    };
    for job in jobs {
        match job {
            Job::Execute { code, done } => {
                let result = match &mut state {
                    Ok(session) => session.execute(&code),
                    Err(e) => Err(e.clone()),
                };
                let _ = done.send(result);
            }
        }
    }
}

/// A live evcxr context with the glassbox prelude loaded.
struct Session {
    ctx: CommandContext,
    forwarder: Forwarder,
    sink: StreamSink,
    /// Held for the session's life: the lock that makes the build directory ours.
    _slot: Option<File>,
}

impl Session {
    fn start(config: &ReplConfig, sink: StreamSink) -> Result<Session, String> {
        let slot = claim_build_dir(&config.cache_dir);
        if let Some((dir, _)) = &slot {
            std::env::set_var("EVCXR_TMPDIR", dir);
        }
        let (ctx, outputs) = CommandContext::new().map_err(|e| e.to_string())?;
        let forwarder = Forwarder::spawn(outputs.stdout, outputs.stderr, sink.clone());
        let mut session = Session { ctx, forwarder, sink, _slot: slot.map(|(_, f)| f) };
        session.load_prelude(&config.glassbox_src)?;
        Ok(session)
    }

    /// Makes the library and `device` available to every cell. The first start on a machine
    /// compiles the library and tch into the build directory (minutes); later starts reuse it.
    fn load_prelude(&mut self, src: &Path) -> Result<(), String> {
        let started = Instant::now();
        let dep = format!(
            ":dep glassbox = {{ path = {}, default-features = false }}",
            serde_json::to_string(&src.to_string_lossy()).expect("a string serialises")
        );
        let prelude = [
            dep.as_str(),
            "use glassbox::prelude::*;",
            "glassbox::runtime::install();",
            "let device = glassbox::device();",
        ]
        .join("\n");
        self.ctx.execute(&prelude).map_err(|e| render_error(&e, &prelude).evalue)?;
        self.forwarder.flush();
        let secs = started.elapsed().as_secs_f64();
        if secs > 10.0 {
            (self.sink)(Stdio::Stderr, format!("glassbox: Rust REPL ready after {secs:.0} s (built the library once; later kernel starts reuse it)\n"));
        }
        Ok(())
    }

    fn execute(&mut self, code: &str) -> CellResult {
        if code.trim().is_empty() {
            return Ok(None);
        }
        let outcome = self.ctx.execute(code);
        self.forwarder.flush();
        let panic = self.forwarder.take_panic();
        match outcome {
            Ok(outputs) => match panic {
                Some(Event::Panic { message, location }) => {
                    let line = location.as_deref().and_then(|l| self.cell_line_of(l, code));
                    Err(panic_error(&message, location.as_deref(), line))
                }
                None => Ok(media_from_mime_map(&outputs.content_by_mime_type)),
            },
            Err(e @ EvcxrError::SubprocessTerminated(_)) => {
                // evcxr has started a fresh child; put the prelude's variables back.
                let error = render_error(&e, code);
                let _ = self.ctx.execute("let device = glassbox::device();");
                self.forwarder.flush();
                Err(error)
            }
            Err(e) => Err(render_error(&e, code)),
        }
    }

    /// Maps a panic location in evcxr's generated source to the line of the cell it came
    /// from, by the text of that line; `None` when the panic was raised outside the cell
    /// (inside a library) or the text is ambiguous.
    fn cell_line_of(&self, location: &str, code: &str) -> Option<usize> {
        let mut parts = location.rsplitn(3, ':');
        let (_col, line, file) = (parts.next()?, parts.next()?, parts.next()?);
        if !file.ends_with("src/lib.rs") || file.contains(".cargo") {
            return None;
        }
        let line: usize = line.parse().ok()?;
        let source = self.ctx.last_source().ok()?;
        let text = source.lines().nth(line.checked_sub(1)?)?.trim();
        let matches: Vec<usize> = code
            .lines()
            .enumerate()
            .filter(|(_, l)| !text.is_empty() && l.trim() == text)
            .map(|(i, _)| i + 1)
            .collect();
        (matches.len() == 1).then(|| matches[0])
    }
}

/// Finds a build directory no other running kernel uses, so concurrent kernels never write
/// the same sources; the first free slot is the one earlier kernels warmed up.
fn claim_build_dir(cache: &Path) -> Option<(PathBuf, File)> {
    let root = cache.join(format!("evcxr-{}", crate::VERSION));
    for slot in 0..8 {
        let dir = root.join(format!("slot-{slot}"));
        std::fs::create_dir_all(&dir).ok()?;
        let lock = File::create(dir.join(".lock")).ok()?;
        if lock.try_lock().is_ok() {
            return Some((dir, lock));
        }
    }
    None
}

fn panic_error(message: &str, location: Option<&str>, line: Option<usize>) -> CellError {
    let place = match (line, location) {
        (Some(n), _) => format!("at cell line {n}"),
        (None, Some(l)) => format!("inside {l}, called from this cell"),
        (None, None) => "in this cell".to_string(),
    };
    CellError {
        ename: "Panic".into(),
        evalue: message.to_string(),
        traceback: vec![
            format!("panicked {place}:"),
            message.to_string(),
            "Variables defined by this cell were dropped; earlier variables are kept.".into(),
        ],
    }
}

/// Turns an evcxr failure into what the client shows.
pub fn render_error(error: &EvcxrError, code: &str) -> CellError {
    match error {
        EvcxrError::CompilationErrors(errors) => {
            let first = errors.first();
            let evalue = first.map(summary).unwrap_or_else(|| "compilation failed".into());
            let traceback = errors.iter().flat_map(|e| compile_traceback(e, code)).collect();
            CellError { ename: "CompileError".into(), evalue, traceback }
        }
        EvcxrError::TypeRedefinedVariablesLost(vars) => {
            let evalue = format!("a type was redefined, so these variables were lost: {}", vars.join(", "));
            CellError { ename: "VariablesLost".into(), traceback: vec![evalue.clone()], evalue }
        }
        EvcxrError::SubprocessTerminated(why) => {
            let evalue = format!(
                "the REPL process died ({}); it was restarted and every variable was lost",
                why.trim()
            );
            CellError { ename: "ReplRestarted".into(), traceback: vec![evalue.clone()], evalue }
        }
        EvcxrError::Message(message) => CellError {
            ename: "ReplError".into(),
            evalue: message.lines().next().unwrap_or_default().to_string(),
            traceback: message.lines().map(str::to_owned).collect(),
        },
    }
}

fn summary(e: &CompilationError) -> String {
    let line = e.primary_spanned_message().and_then(|m| m.span.as_ref()).map(|s| s.start_line);
    match (e.code(), line) {
        (Some(code), Some(l)) => format!("error[{code}] at cell line {l}: {}", e.message()),
        (None, Some(l)) => format!("error at cell line {l}: {}", e.message()),
        (Some(code), None) => format!("error[{code}]: {}", e.message()),
        (None, None) => e.message(),
    }
}

/// rustc-style lines: the message, then each span as `cell line N`, the source line and a
/// caret underline with its label.
fn compile_traceback(e: &CompilationError, code: &str) -> Vec<String> {
    let mut lines = vec![match e.code() {
        Some(c) => format!("{}[{c}]: {}", e.level(), e.message()),
        None => format!("{}: {}", e.level(), e.message()),
    }];
    let source: Vec<&str> = code.lines().collect();
    for m in e.spanned_messages() {
        let Some(span) = &m.span else {
            if !m.label.is_empty() {
                lines.push(format!("  = note: {}", m.label));
            }
            continue;
        };
        lines.push(format!("  --> cell line {}:{}", span.start_line, span.start_column));
        if let Some(text) = source.get(span.start_line.wrapping_sub(1)) {
            let width = span.start_line.to_string().len();
            lines.push(format!("{:width$} | {text}", span.start_line));
            let start = span.start_column.saturating_sub(1);
            let end = if span.end_line == span.start_line { span.end_column.saturating_sub(1) } else { text.len() };
            let carets = "^".repeat(end.saturating_sub(start).max(1));
            lines.push(format!("{:width$} | {}{carets} {}", "", " ".repeat(start), m.label));
        }
    }
    lines.extend(e.help().into_iter().map(|h| format!("  = help: {h}")));
    lines
}

/// Moves the child's output to the sink as it arrives and takes glassbox events out of it.
struct Forwarder {
    flush: Sender<Sender<()>>,
    panic: Arc<Mutex<Option<Event>>>,
}

impl Forwarder {
    fn spawn(stdout: Receiver<String>, stderr: Receiver<String>, sink: StreamSink) -> Forwarder {
        let (flush, flushes) = crossbeam_channel::unbounded::<Sender<()>>();
        let panic = Arc::new(Mutex::new(None));
        let slot = panic.clone();
        std::thread::Builder::new()
            .name("repl-output".into())
            .spawn(move || {
                let out = |line: String| forward_stdout(line, &sink, &slot);
                let err = |line: String| sink(Stdio::Stderr, line + "\n");
                loop {
                    select! {
                        recv(stdout) -> line => match line { Ok(l) => out(l), Err(_) => break },
                        recv(stderr) -> line => match line { Ok(l) => err(l), Err(_) => break },
                        recv(flushes) -> ack => {
                            let Ok(ack) = ack else { break };
                            stdout.try_iter().for_each(out);
                            // The child's stderr is read by another thread than its stdout,
                            // so a line written just before the cell ended may still be on
                            // its way: wait until the stream has been quiet briefly.
                            while let Ok(l) = stderr.recv_timeout(Duration::from_millis(15)) {
                                err(l);
                            }
                            let _ = ack.send(());
                        }
                    }
                }
            })
            .expect("spawn the output forwarder");
        Forwarder { flush, panic }
    }

    /// Returns once every line the child wrote so far has been sunk. evcxr only returns a
    /// cell's result after the forwarder has taken all its stdout lines off the channel, and
    /// the forwarder handles this request after those lines, so nothing is left behind.
    fn flush(&self) {
        let (ack, acked) = crossbeam_channel::bounded(1);
        if self.flush.send(ack).is_ok() {
            let _ = acked.recv();
        }
    }

    fn take_panic(&self) -> Option<Event> {
        self.panic.lock().expect("panic slot").take()
    }
}

fn forward_stdout(line: String, sink: &StreamSink, panic: &Mutex<Option<Event>>) {
    let (text, event) = Event::split_line(&line);
    match event {
        None => sink(Stdio::Stdout, line + "\n"),
        Some(event) => {
            if !text.is_empty() {
                sink(Stdio::Stdout, text.to_string());
            }
            match event {
                Ok(e @ Event::Panic { .. }) => *panic.lock().expect("panic slot") = Some(e),
                Err(e) => sink(Stdio::Stderr, format!("glassbox: unreadable event from the REPL: {e}\n")),
            }
        }
    }
}
