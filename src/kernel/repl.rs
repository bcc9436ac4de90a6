//! The Rust REPL: an evcxr [`CommandContext`] on a thread of its own, with the glassbox
//! prelude loaded. Cells run in evcxr's child process; what they print and display streams
//! out through [`Forwarder`] while they run, and all of it has been handed over before a
//! cell's result is returned.

use super::commands::{self, Action, ReplView, Segment};
use super::execute::{media_from_mime_map, CellError, CellResult, CellValue};
use super::final_expression::{self, Shift};
use super::interrupter::{Ending, Interrupter, GRACE};
use super::rust_analysis::{self, Answer, Unready};
use crate::display::Output;
use crate::runtime::Event;
use crate::vars::{self, Var};
use crate::vars_socket;
use crossbeam_channel::{select, Receiver, Sender};
use evcxr::{CommandContext, CompilationError, Error as EvcxrError, EvalCallbacks};
use jupyter_protocol::{
    ClearOutput, DisplayData, JupyterMessageContent, Media, Stdio, StreamContent, Transient, UpdateDisplayData,
};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long `:vars` waits for the child's answer; it comes in microseconds unless the child
/// is stuck.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Receives what cells print and display, as iopub contents, while they run.
pub type Sink = Arc<dyn Fn(JupyterMessageContent) + Send + Sync>;

/// Asks the front end for a line of input (prompt, is_password); `None` when it cannot.
pub type InputReader = Arc<dyn Fn(&str, bool) -> Option<String> + Send + Sync>;

/// What the REPL needs to start.
#[derive(Debug, Clone)]
pub struct ReplConfig {
    /// The glassbox crate the REPL depends on.
    pub glassbox_src: PathBuf,
    /// Root of the persistent evcxr build directories.
    pub cache_dir: PathBuf,
}

/// Completions: the replaced range (in characters, as Jupyter counts) and the candidates.
pub type Completions = (usize, usize, Vec<String>);

/// Documentation of what is at a position: (plain text, html).
pub type Documentation = (String, String);

enum Job {
    Execute { code: String, input: InputReader, done: Sender<CellResult> },
    Complete { code: String, cursor: usize, done: Sender<Answer<Completions>> },
    Inspect { code: String, cursor: usize, done: Sender<Answer<Option<Documentation>>> },
}

/// The kernel's handle on the REPL thread.
#[derive(Clone)]
pub struct Repl {
    jobs: Sender<Job>,
}

impl Repl {
    /// Starts the REPL thread. Returns at once: creating the context and compiling the
    /// prelude happen on that thread, so the kernel answers `kernel_info` meanwhile.
    pub fn spawn(config: ReplConfig, sink: Sink, interrupter: Interrupter) -> Repl {
        let (jobs, rx) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("repl".into())
            .spawn(move || serve(config, sink, interrupter, rx))
            .expect("spawn the REPL thread");
        Repl { jobs }
    }

    /// Runs a cell and waits for it; all its output has been sunk when this returns.
    pub fn execute(&self, code: &str, input: InputReader) -> CellResult {
        self.ask(|done| Job::Execute { code: code.to_owned(), input, done }).unwrap_or_else(|| Err(dead_repl()))
    }

    /// Completions at `cursor` (characters into `code`).
    pub fn complete(&self, code: &str, cursor: usize) -> Answer<Completions> {
        self.ask(|done| Job::Complete { code: code.to_owned(), cursor, done })
            .unwrap_or_else(|| Answer::ready((cursor, cursor, Vec::new())))
    }

    /// Documentation of what is at `cursor`.
    pub fn inspect(&self, code: &str, cursor: usize) -> Answer<Option<Documentation>> {
        self.ask(|done| Job::Inspect { code: code.to_owned(), cursor, done }).unwrap_or_else(|| Answer::ready(None))
    }

    fn ask<T>(&self, job: impl FnOnce(Sender<T>) -> Job) -> Option<T> {
        let (done, answer) = crossbeam_channel::bounded(1);
        self.jobs.send(job(done)).ok()?;
        answer.recv().ok()
    }
}

fn dead_repl() -> CellError {
    CellError::new("ReplDied", "the REPL thread has stopped; restart the kernel")
}

fn serve(config: ReplConfig, sink: Sink, interrupter: Interrupter, jobs: Receiver<Job>) {
    let mut state = Session::start(&config, sink, interrupter)
        .map_err(|e| CellError::new("ReplStartError", format!("the Rust REPL could not start: {e}")));
    let mut answered = false;
    loop {
        let warm_up = match &state {
            Ok(session) => session.warm_up.outcome(),
            Err(_) => crossbeam_channel::never(),
        };
        select! {
            recv(jobs) -> job => match job {
                Ok(job) => {
                    answer(job, &mut state);
                    answered = true;
                }
                Err(_) => break,
            },
            recv(warm_up) -> outcome => {
                if let (Ok(outcome), Ok(session)) = (outcome, &mut state) {
                    session.warm_up_answered(outcome);
                }
            }
        }
        // Once the first request has its answer, so that the start and the first cell do not
        // share the CPU with it, and only while nothing waits.
        if let (true, true, Ok(session)) = (answered, jobs.is_empty(), &mut state) {
            session.continue_warm_up();
        }
    }
}

fn answer(job: Job, state: &mut Result<Session, CellError>) {
    match (job, state) {
        (Job::Execute { code, input, done }, Ok(session)) => {
            let failed = || Err(CellError::new("ReplError", "the REPL failed inside while running this cell"));
            let _ = done.send(survive(failed, || session.execute(&code, &input)));
        }
        (Job::Execute { done, .. }, Err(e)) => {
            let _ = done.send(Err(e.clone()));
        }
        (Job::Complete { code, cursor, done }, Ok(session)) => {
            let _ =
                done.send(survive(|| Answer::ready((cursor, cursor, Vec::new())), || session.complete(&code, cursor)));
        }
        (Job::Complete { cursor, done, .. }, Err(_)) => {
            let _ = done.send(Answer::ready((cursor, cursor, Vec::new())));
        }
        (Job::Inspect { code, cursor, done }, Ok(session)) => {
            let _ = done.send(survive(|| Answer::ready(None), || session.inspect(&code, cursor)));
        }
        (Job::Inspect { done, .. }, Err(_)) => {
            let _ = done.send(Answer::ready(None));
        }
    }
}

/// Runs `job`, or gives `fallback` if it panics. evcxr and rust-analyzer run in this
/// thread, and some inputs reach panics in them (a completion inside `"h\nV"` at 0 does);
/// caught, such a panic costs that one answer, not the REPL thread and every variable.
fn survive<T>(fallback: impl FnOnce() -> T, job: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).unwrap_or_else(|_| fallback())
}

/// A live evcxr context with the glassbox prelude loaded.
struct Session {
    ctx: CommandContext,
    forwarder: Forwarder,
    sink: Sink,
    interrupter: Interrupter,
    /// `:time`: report each cell's duration.
    timing: bool,
    /// rust-analyzer's analysis of the library (see [`Session::continue_warm_up`]).
    warm_up: rust_analysis::WarmUp,
    /// Statements commands left for the child ([`Action::Defer`]), in order.
    deferred: Vec<String>,
    /// Held for the session's life: the lock that makes the build directory ours.
    _slot: Option<File>,
    /// The private folder of the socket the child answers `:vars` through (src/vars_socket.rs).
    probe_dir: tempfile::TempDir,
}

/// Restores what the prelude put in the child, after evcxr had to start a new one: the
/// event hooks, the thread that answers `:vars` from evcxr's variable store (the store's type
/// exists only in cell code, hence the closure), `device` and `zoo`.
/// `zoo` lists the model zoo and loads from it on request: nothing trains at start-up. The
/// types are written out so that evcxr need not ask rust-analyzer for them, whose first
/// analysis of glassbox and tch takes seconds; it warms up later, while the kernel is idle.
fn child_prelude(probe: &Path) -> String {
    format!(
        "glassbox::runtime::install();
{{ let store = &*evcxr_variable_store as *const evcxr_internal_runtime::VariableStore as usize;
if let Err(e) = glassbox::vars_socket::serve({probe:?}, Box::new(move |name: &str| unsafe {{ &*(store as *const evcxr_internal_runtime::VariableStore) }}.variable(name).and_then(glassbox::vars::describe))) {{ eprintln!(\"glassbox: `:vars` cannot ask this REPL what its tensors hold: {{e}}\"); }} }}
let device: glassbox::tch::Device = glassbox::device();
let zoo: glassbox::zoo::Zoo = glassbox::zoo::Zoo::new(device);"
    )
}

/// The variables [`child_prelude`] defines: a restart restores them, so they are never lost.
const PRELUDE_VARIABLES: &[&str] = &["device", "zoo"];

impl Session {
    fn start(config: &ReplConfig, sink: Sink, interrupter: Interrupter) -> Result<Session, String> {
        let started = Instant::now();
        let slot = claim_build_dir(&config.cache_dir);
        if let Some((dir, _)) = &slot {
            std::env::set_var("EVCXR_TMPDIR", dir);
        }
        let build_dir = slot.as_ref().map(|(dir, _)| dir.clone());
        let probe_dir = tempfile::Builder::new().prefix("glassbox-").tempdir().map_err(|e| e.to_string())?;
        let built_before = build_dir.as_deref().and_then(newest_library_build);
        // Cells link the library as one shared object (`repl/Cargo.toml` says why) under the
        // name they write, `glassbox`. The context's first compile already has it, so cargo
        // checks the library once and the prelude replays that compile's rustc command. The
        // first start on a machine compiles the library and tch there (minutes).
        let dependency = format!(
            "{{ path = {}, package = \"glassbox-repl\" }}",
            serde_json::to_string(&config.glassbox_src.join("repl").to_string_lossy()).expect("a string serialises")
        );
        let (ctx, outputs) =
            CommandContext::with_dependencies(&[("glassbox", &dependency)]).map_err(|e| e.to_string())?;
        let context = started.elapsed();
        let forwarder = Forwarder::spawn(outputs.stdout, outputs.stderr, sink.clone());
        let mut session = Session {
            ctx,
            forwarder,
            sink,
            interrupter,
            timing: false,
            warm_up: rust_analysis::WarmUp::new(),
            deferred: Vec::new(),
            _slot: slot.map(|(_, f)| f),
            probe_dir,
        };
        let prelude = session.load_prelude()?;
        let rebuilt = build_dir.as_deref().and_then(newest_library_build) > built_before;
        let start = StartTimes { context, prelude, total: started.elapsed(), cargo_runs: evcxr::cargo_runs() };
        super::log(format_args!("{start}"));
        if rebuilt {
            session.stdout(format!(
                "glassbox: compiled the glassbox library for the Rust REPL ({:.0} s); \
                 later kernel starts reuse this build until glassbox changes\n",
                start.total.as_secs_f64()
            ));
        }
        Ok(session)
    }

    /// Makes the library's prelude and `device` available to every cell.
    fn load_prelude(&mut self) -> Result<PreludeTimes, String> {
        let started = Instant::now();
        let prelude = ["use glassbox::prelude::*;", &child_prelude(&self.probe_path())].join("\n");
        let outputs = self.ctx.execute(&prelude).map_err(|e| render_error(&e, &prelude, 0, &[]).evalue)?;
        self.forwarder.flush();
        self.interrupter.set_child(self.child_pid());
        let phase = |name: &str| outputs.phases.iter().filter(|p| p.name == name).map(|p| p.duration).sum();
        let (compile, run): (Duration, Duration) = (phase("Final compile"), phase("Execution"));
        Ok(PreludeTimes { preparing: started.elapsed().saturating_sub(compile + run), compile, run })
    }

    /// Has rust-analyzer load glassbox and tch, in the background: completion, inspection and
    /// a cell's first untyped variable need it, and its first analysis takes seconds.
    fn continue_warm_up(&mut self) {
        let Some(code) = self.warm_up.due() else { return };
        let preparing = Instant::now();
        match survive(
            || Err(anyhow::anyhow!("rust-analyzer panicked")),
            || self.ctx.pending_completions(code, code.len()),
        ) {
            Ok(pending) => self.warm_up.run(pending, preparing),
            Err(e) => self.warm_up_answered(Err(rust_analysis::Failure::Failed(e.to_string()))),
        }
    }

    /// Whether rust-analyzer may be asked: not while it warms up (see [`rust_analysis::WarmUp::is_over`]).
    fn analysis_ready(&self) -> bool {
        self.warm_up.is_over()
    }

    fn warm_up_answered(&mut self, outcome: rust_analysis::Outcome) {
        match self.warm_up.answered(outcome) {
            Some(rust_analysis::Finished::Warm { took, preparing }) => {
                release_freed_memory();
                super::log(format_args!(
                    "{ANALYSIS_LOG} {:.2} s in the background ({:.3} s of it on the REPL thread)",
                    took.as_secs_f64(),
                    preparing.as_secs_f64()
                ));
            }
            Some(rust_analysis::Finished::Failed(why)) => {
                super::log(format_args!("rust-analyzer could not warm up: {why}"))
            }
            None => {}
        }
    }

    fn stdout(&self, text: String) {
        (self.sink)(JupyterMessageContent::StreamContent(StreamContent { name: Stdio::Stdout, text }));
    }

    fn child_pid(&self) -> Option<u32> {
        self.ctx.process_handle().lock().ok().map(|c| c.id())
    }

    fn stderr(&self, text: String) {
        (self.sink)(JupyterMessageContent::StreamContent(StreamContent { name: Stdio::Stderr, text }));
    }

    fn probe_path(&self) -> PathBuf {
        self.probe_dir.path().join("vars.sock")
    }

    /// `:vars`: names and types from evcxr, what each tensor holds from the child, in the
    /// order of the names. Shown as a display, so that it stays visible wherever the command
    /// stands in a cell.
    fn show_variables(&self) {
        let mut variables = self.view().variables;
        variables.sort();
        let names: Vec<&str> = variables.iter().map(|(n, _)| n.as_str()).collect();
        let held = vars_socket::ask(&self.probe_path(), &names, PROBE_TIMEOUT).unwrap_or_else(|e| {
            self.stderr(format!("glassbox: the REPL did not say what its tensors hold ({e}); types only\n"));
            vec![None; names.len()]
        });
        let rows: Vec<Var> = variables.iter().zip(held).map(|((n, t), info)| Var::new(n, t).holding(info)).collect();
        let table = vars::table(&rows);
        if let Some(data) = output_media(&table) {
            let metadata = table.metadata().clone();
            (self.sink)(JupyterMessageContent::DisplayData(DisplayData { data, metadata, transient: None }));
        }
    }

    fn view(&self) -> ReplView {
        let variables = self.ctx.variables_and_types().map(|(n, t)| (n.to_owned(), t.to_owned())).collect();
        ReplView { variables, timing: self.timing }
    }

    fn execute(&mut self, code: &str, input: &InputReader) -> CellResult {
        let started = Instant::now();
        let before: Vec<String> = self.view().variables.into_iter().map(|(n, _)| n).collect();
        self.interrupter.begin();
        let result = self.run_segments(code, input);
        let result = match self.interrupter.end() {
            Ending::Completed => result.map_err(|e| crashed(e, &before)),
            // A glassbox operation that stopped says what it stopped (a wait for input, say).
            Ending::Interrupted => Err(match result {
                Err(e) if e.ename == "KeyboardInterrupt" => e,
                _ => interrupted(&result, &before),
            }),
            Ending::CompileCancelled => Err(compile_cancelled(&result, &before)),
        };
        if self.timing {
            self.stderr(format!("cell took {:.2} s\n", started.elapsed().as_secs_f64()));
        }
        result
    }

    fn run_segments(&mut self, code: &str, input: &InputReader) -> CellResult {
        if commands::asks_to_exit(code, &self.view()) {
            return Ok(CellValue { ask_exit: true, ..Default::default() });
        }
        let mut value = CellValue::default();
        for segment in commands::split_cell(code) {
            value = match segment {
                Segment::Rust { code, first_line } => self.run_rust(&code, first_line - 1, None, input)?,
                Segment::Command { line, line_no } => self.run_command(&line, line_no, input)?,
            };
        }
        Ok(value)
    }

    fn run_command(&mut self, line: &str, line_no: usize, input: &InputReader) -> CellResult {
        let action = commands::run(line, &self.view()).map_err(|e| CellError {
            ename: "UsageError".into(),
            evalue: e.0.clone(),
            traceback: vec![format!("cell line {line_no}: {line}"), e.0],
        })?;
        let text = |t: String| CellValue { result: text_media(&t), ..Default::default() };
        Ok(match action {
            Action::Rust(code) => self.run_rust(&code, line_no - 1, Some((line, line_no)), input)?,
            Action::Show(t) => text(t),
            Action::Defer(statements) => {
                self.deferred.push(statements);
                CellValue::default()
            }
            Action::Page(p) => CellValue { page: Some(p), ..Default::default() },
            Action::ShowVariables => {
                self.show_variables();
                CellValue::default()
            }
            Action::SetTiming(on) => {
                self.timing = on.unwrap_or(!self.timing);
                text(format!("per-cell timing {}", if self.timing { "on" } else { "off" }))
            }
        })
    }

    /// Runs Rust lines that start at line `offset + 1` of the cell; `command` is the command
    /// line (and its line number) that generated them, if one did.
    fn run_rust(
        &mut self,
        code: &str,
        offset: usize,
        command: Option<(&str, usize)>,
        input: &InputReader,
    ) -> CellResult {
        let sink = self.sink.clone();
        let mut callbacks = EvalCallbacks {
            // The request type is private to evcxr: the closure takes it from this field.
            input_reader: &|req| {
                input(&req.prompt, req.is_password).unwrap_or_else(|| {
                    let note = "glassbox: this front end does not take input; an empty line was used\n";
                    sink(stream(Stdio::Stderr, note.into()));
                    String::new()
                })
            },
        };
        let (mut compiled, mut shifts) = match final_expression::show_final_expression(code) {
            Some((rewritten, shift)) => (rewritten, vec![shift]),
            None => (code.to_string(), Vec::new()),
        };
        let deferred = self.take_deferred(&compiled);
        if let Some(statements) = &deferred {
            shifts.push(Shift { line: 1, column: 1, by: statements.chars().count() });
            compiled.insert_str(0, statements);
        }
        let compiled = compiled.as_str();
        let outcome = self.ctx.execute_with_callbacks(compiled, &mut callbacks);
        if let (Some(statements), Err(EvcxrError::CompilationErrors(_))) = (&deferred, &outcome) {
            // Nothing of the code ran: the statements wait for the next code that compiles.
            self.deferred.insert(0, statements.clone());
        }
        self.forwarder.flush();
        let panic = self.forwarder.take_panic();
        match outcome {
            Ok(outputs) => match panic {
                Some(Event::Panic { message, location }) => {
                    let line = location.as_deref().and_then(|l| self.cell_line_of(l, compiled)).map(|l| l + offset);
                    Err(panic_error(&message, location.as_deref(), line))
                }
                Some(Event::Error { ename, evalue }) => {
                    Err(CellError { traceback: vec![format!("{ename}: {evalue}"), KEPT.into()], ename, evalue })
                }
                _ => Ok(CellValue { result: media_from_mime_map(&outputs.content_by_mime_type), ..Default::default() }),
            },
            Err(e @ EvcxrError::SubprocessTerminated(_)) => {
                // evcxr has started a fresh child; put back what the prelude gave it.
                let error = render_error(&e, code, offset, &shifts);
                let _ = self.ctx.execute(&child_prelude(&self.probe_path()));
                self.forwarder.flush();
                self.interrupter.set_child(self.child_pid());
                Err(error)
            }
            Err(EvcxrError::CompilationErrors(errors)) if command.is_some() => {
                let (line, line_no) = command.expect("a command");
                Err(command_compile_error(&errors, line, line_no))
            }
            Err(e) => Err(render_error(&e, code, offset, &shifts)),
        }
    }

    /// The deferred statements, as a prefix for the first line of `code`; `None` when there
    /// are none, or when that line must stay first (an evcxr command or an inner attribute),
    /// in which case they run on their own.
    fn take_deferred(&mut self, code: &str) -> Option<String> {
        if self.deferred.is_empty() {
            return None;
        }
        let statements = std::mem::take(&mut self.deferred).join(" ");
        let first = code.trim_start();
        if first.starts_with(':') || first.starts_with("#!") {
            if self.ctx.execute(&statements).is_err() {
                self.stderr(format!("glassbox: could not run `{statements}` before this cell\n"));
            }
            return None;
        }
        Some(format!("{statements} "))
    }

    fn complete(&mut self, code: &str, cursor_chars: usize) -> Answer<Completions> {
        let cursor = byte_offset(code, cursor_chars);
        let line_start = code[..cursor].rfind('\n').map_or(0, |i| i + 1);
        let line_end = code[cursor..].find('\n').map_or(code.len(), |i| cursor + i);
        let chars = |byte: usize| code[..byte].chars().count();
        let view = self.view();
        if let Some((s, e, m)) = commands::complete(&code[line_start..line_end], cursor - line_start, &view, self) {
            return Answer::ready((chars(line_start + s), chars(line_start + e), m));
        }
        if !self.analysis_ready() {
            let (start, end, names) =
                rust_analysis::variables_named_like(code, cursor, self.ctx.variables_and_types().map(|(n, _)| n));
            return Answer::unready((chars(start), chars(end), names), Unready::WarmingUp);
        }
        let nothing = (cursor_chars, cursor_chars, Vec::new());
        match self.ctx.pending_completions(code, cursor).ok().map(|p| rust_analysis::within(p, rust_analysis::BUDGET)) {
            Some(Ok(Some(c))) => Answer::ready((
                chars(c.start_offset),
                chars(c.end_offset),
                c.completions.into_iter().map(|c| c.code).collect(),
            )),
            Some(Err(why)) => Answer::unready(nothing, why),
            Some(Ok(None)) | None => Answer::ready(nothing),
        }
    }

    fn inspect(&mut self, code: &str, cursor_chars: usize) -> Answer<Option<Documentation>> {
        let cursor = byte_offset(code, cursor_chars);
        let line_start = code[..cursor].rfind('\n').map_or(0, |i| i + 1);
        let line = code[line_start..].lines().next().unwrap_or_default();
        if let Some(usage) = commands::inspect(line) {
            let html = format!("<pre>{}</pre>", usage.replace('<', "&lt;"));
            return Answer::ready(Some((usage, html)));
        }
        // rust-analyzer documents the expression ending at the position: the whole word.
        let end = code[cursor..].find(|c: char| !(c.is_alphanumeric() || c == '_')).map_or(code.len(), |i| cursor + i);
        if !self.analysis_ready() {
            return Answer::unready(None, Unready::WarmingUp);
        }
        match self.ctx.pending_hover_at(code, end).ok().map(|p| rust_analysis::within(p, rust_analysis::BUDGET)) {
            Some(Ok(Some((plain, html)))) if plain != "No documentation found" && !plain.trim().is_empty() => {
                Answer::ready(Some((plain, html)))
            }
            Some(Err(why)) => Answer::unready(None, why),
            _ => Answer::ready(None),
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
        line_of_statement(code, source.lines().nth(line.checked_sub(1)?)?.trim())
    }
}

/// The line of `code` (1-based) that a line of evcxr's generated source came from. evcxr
/// puts each statement on a line of its own, so a line of several statements holds the
/// generated text rather than equals it: a line equal to it wins, else the one line that
/// contains it; `None` when that is ambiguous.
fn line_of_statement(code: &str, generated: &str) -> Option<usize> {
    if generated.is_empty() {
        return None;
    }
    let unique = |keep: &dyn Fn(&str) -> bool| {
        let found: Vec<usize> = code.lines().enumerate().filter(|(_, l)| keep(l.trim())).map(|(i, _)| i + 1).collect();
        (found.len() == 1).then(|| found[0])
    };
    unique(&|l| l == generated).or_else(|| unique(&|l| l.contains(generated)))
}

/// Where a warm start's seconds go, as the kernel logs them (`glassbox bench kernel` reads
/// the line).
struct StartTimes {
    /// evcxr's context: the REPL child process, and a first cell built with the library as a
    /// dependency (cargo's check of the library and its dependencies, rustc, the link).
    context: Duration,
    prelude: PreludeTimes,
    total: Duration,
    /// The cargo commands evcxr ran: one when the start is warm.
    cargo_runs: usize,
}

struct PreludeTimes {
    /// evcxr's work before the compile: parsing, and rust-analyzer when a variable's type is
    /// not written.
    preparing: Duration,
    /// Building it: the first cell's rustc command, replayed.
    compile: Duration,
    /// Loading it into the child (libtorch) and running it.
    run: Duration,
}

/// The prefix of the start breakdown in the kernel's log.
pub const START_LOG: &str = "REPL ready in";

/// The prefix of the line the kernel logs when rust-analyzer has warmed up.
pub const ANALYSIS_LOG: &str = "rust-analyzer ready in";

impl std::fmt::Display for StartTimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |d: Duration| d.as_secs_f64();
        write!(
            f,
            "{START_LOG} {:.2} s, cargo ran {} {}: evcxr context with the library {:.2} s, preparing the prelude {:.2} s, compiling it {:.2} s, loading and running it {:.2} s",
            s(self.total),
            self.cargo_runs,
            if self.cargo_runs == 1 { "time" } else { "times" },
            s(self.context),
            s(self.prelude.preparing),
            s(self.prelude.compile),
            s(self.prelude.run)
        )
    }
}

/// When the REPL's copy of the glassbox library was last built in `build_dir`.
fn newest_library_build(build_dir: &Path) -> Option<std::time::SystemTime> {
    let deps = std::fs::read_dir(build_dir.join("target")).ok()?.flatten().map(|e| e.path().join("debug").join("deps"));
    deps.filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("libglassbox-"))
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max()
}

fn byte_offset(code: &str, chars: usize) -> usize {
    code.char_indices().nth(chars).map_or(code.len(), |(i, _)| i)
}

/// Hands the heap pages rust-analyzer's first analysis used and freed back to the system:
/// glibc keeps them otherwise, and they were about 0.3 GB of the 1.2 GB the kernel held after
/// the warm-up.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap memory to the system; it touches no live
    // allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn output_media(output: &Output) -> Option<Media> {
    serde_json::from_value(serde_json::Value::Object(output.data().clone())).ok()
}

fn text_media(text: &str) -> Option<Media> {
    serde_json::from_value(serde_json::json!({ "text/plain": text })).ok()
}

/// The variables a restart of the REPL child loses: all but the prelude's, which it restores.
fn lost_variables(before: &[String]) -> String {
    let lost: Vec<&str> = before.iter().map(String::as_str).filter(|n| !PRELUDE_VARIABLES.contains(n)).collect();
    if lost.is_empty() {
        "none".to_string()
    } else {
        lost.join(", ")
    }
}

fn restarted(result: &CellResult) -> bool {
    matches!(result, Err(e) if e.ename == "ReplRestarted")
}

/// A cell whose REPL child died (an abort, a segfault, out of memory) names what was lost.
fn crashed(error: CellError, before: &[String]) -> CellError {
    if error.ename != "ReplRestarted" {
        return error;
    }
    let evalue = format!("{}; lost variables: {}", error.evalue, lost_variables(before));
    CellError { traceback: vec![evalue.clone()], evalue, ..error }
}

/// The error of an interrupted cell: what was kept, or, when the cell ignored the interrupt
/// and the REPL had to be restarted, which variables were lost.
fn interrupted(result: &CellResult, before: &[String]) -> CellError {
    if restarted(result) {
        CellError::new(
            "KeyboardInterrupt",
            format!(
                "the cell did not stop within {} s of the interrupt, so the REPL was restarted; lost variables: {}",
                GRACE.as_secs(),
                lost_variables(before)
            ),
        )
    } else {
        CellError::new(
            "KeyboardInterrupt",
            "interrupted; variables from earlier cells are kept (the interrupted operation kept what it had done)",
        )
    }
}

/// The error of a cell interrupted while it compiled: the compilation was ended, so no code
/// of that part ran and the REPL child was never touched.
fn compile_cancelled(result: &CellResult, before: &[String]) -> CellError {
    if restarted(result) {
        return interrupted(result, before);
    }
    CellError::new(
        "KeyboardInterrupt",
        "interrupted while compiling: the compilation was cancelled and every variable is kept",
    )
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
            if slot > 0 {
                seed_from(&root.join("slot-0"), &dir);
            }
            return Some((dir, lock));
        }
    }
    None
}

/// Starts a new build directory as a copy of the warm one, so a second kernel running beside
/// the first does not compile tch again (minutes). `cp -a` keeps the timestamps cargo's
/// freshness checks read; a copy taken mid-build only makes cargo rebuild what is stale.
fn seed_from(warm: &Path, fresh: &Path) {
    if fresh.join("target").exists() || !warm.join("target").exists() {
        return;
    }
    for part in ["target", "Cargo.lock"] {
        let _ = std::process::Command::new("cp").arg("-a").arg(warm.join(part)).arg(fresh.join(part)).status();
    }
}

const KEPT: &str = "Variables defined by this cell were dropped; earlier variables are kept.";

fn panic_error(message: &str, location: Option<&str>, line: Option<usize>) -> CellError {
    let place = match (line, location) {
        (Some(n), _) => format!("at cell line {n}"),
        (None, Some(l)) => format!("inside {l}, called from this cell"),
        (None, None) => "in this cell".to_string(),
    };
    CellError {
        ename: "Panic".into(),
        evalue: message.to_string(),
        traceback: vec![format!("panicked {place}:"), message.to_string(), KEPT.into()],
    }
}

/// Turns an evcxr failure into what the client shows; `offset` is the cell line before the
/// first line of `code`, and `shifts` how the kernel's additions moved columns, in the order
/// they were made.
pub fn render_error(error: &EvcxrError, code: &str, offset: usize, shifts: &[Shift]) -> CellError {
    match error {
        EvcxrError::CompilationErrors(errors) => {
            let first = errors.first();
            let evalue = first.map(|e| summary(e, offset)).unwrap_or_else(|| "compilation failed".into());
            let traceback = errors.iter().flat_map(|e| compile_traceback(e, code, offset, shifts)).collect();
            CellError { ename: "CompileError".into(), evalue, traceback }
        }
        EvcxrError::TypeRedefinedVariablesLost(vars) => CellError::new(
            "VariablesLost",
            format!("a type was redefined, so these variables were lost: {}", vars.join(", ")),
        ),
        EvcxrError::SubprocessTerminated(why) => {
            CellError::new("ReplRestarted", format!("the REPL process died ({}) and was restarted", why.trim()))
        }
        EvcxrError::Message(message) => CellError {
            ename: "ReplError".into(),
            evalue: message.lines().next().unwrap_or_default().to_string(),
            traceback: message.lines().map(str::to_owned).collect(),
        },
    }
}

/// A command whose generated code does not compile: the session's values do not fit the
/// library call (a variable of a look-alike type, one moved away). Said in the command's
/// terms, since the user never wrote that code.
fn command_compile_error(errors: &[CompilationError], line: &str, line_no: usize) -> CellError {
    let why: Vec<String> = errors.iter().map(|e| in_cell_terms(&e.message())).collect();
    let name = line.split_whitespace().next().unwrap_or(line);
    let first = why.first().map_or("its library call does not compile", String::as_str);
    let evalue = format!("{name} cannot run on these variables: {first}");
    let mut traceback = vec![format!("cell line {line_no}: {line}")];
    traceback.extend(why.iter().map(|w| format!("  {w}")));
    CellError { ename: "CommandError".into(), evalue, traceback }
}

fn summary(e: &CompilationError, offset: usize) -> String {
    let line = e.primary_spanned_message().and_then(|m| m.span.as_ref()).map(|s| s.start_line + offset);
    match (e.code(), line) {
        (Some(code), Some(l)) => format!("error[{code}] at cell line {l}: {}", in_cell_terms(&e.message())),
        (None, Some(l)) => format!("error at cell line {l}: {}", in_cell_terms(&e.message())),
        (Some(code), None) => format!("error[{code}]: {}", in_cell_terms(&e.message())),
        (None, None) => in_cell_terms(&e.message()),
    }
}

/// A message about a missing `;` names what follows the statement in evcxr's generated code
/// (`evcxr_variable_store`, `fn`), which the user never wrote: say only what is missing.
fn in_cell_terms(message: &str) -> String {
    match message.split_once(", found ") {
        Some((expected, _)) if expected.ends_with("expected `;`") => format!("{expected} at the end of this statement"),
        _ => message.to_string(),
    }
}

/// rustc-style lines: the message, then each span as `cell line N`, the source line and a
/// caret underline with its label.
fn compile_traceback(e: &CompilationError, code: &str, offset: usize, shifts: &[Shift]) -> Vec<String> {
    let column = |line: usize, column: usize| shifts.iter().rev().fold(column, |c, s| s.column_in_cell(line, c));
    let mut lines = vec![match e.code() {
        Some(c) => format!("{}[{c}]: {}", e.level(), in_cell_terms(&e.message())),
        None => format!("{}: {}", e.level(), in_cell_terms(&e.message())),
    }];
    let source: Vec<&str> = code.lines().collect();
    for m in e.spanned_messages() {
        let Some(span) = &m.span else {
            if !m.label.is_empty() {
                lines.push(format!("  = note: {}", in_cell_terms(&m.label)));
            }
            continue;
        };
        let cell_line = span.start_line + offset;
        let (start_column, end_column) =
            (column(span.start_line, span.start_column), column(span.end_line, span.end_column));
        lines.push(format!("  --> cell line {}:{}", cell_line, start_column));
        if let Some(text) = source.get(span.start_line.wrapping_sub(1)) {
            let width = cell_line.to_string().len();
            lines.push(format!("{cell_line:width$} | {text}"));
            let start = start_column.saturating_sub(1);
            let end = if span.end_line == span.start_line { end_column.saturating_sub(1) } else { text.len() };
            let carets = "^".repeat(end.saturating_sub(start).max(1));
            lines.push(format!("{:width$} | {}{carets} {}", "", " ".repeat(start), in_cell_terms(&m.label)));
        }
    }
    // evcxr appends a suggestion's replacement text after the help line; without its
    // place in the source it reads as a stray line.
    lines.extend(e.help().iter().filter_map(|h| h.lines().next()).map(|h| format!("  = help: {h}")));
    lines
}

/// Moves the child's output to the sink as it arrives and takes glassbox events out of it.
struct Forwarder {
    flush: Sender<Sender<()>>,
    panic: Arc<Mutex<Option<Event>>>,
}

impl Forwarder {
    fn spawn(stdout: Receiver<String>, stderr: Receiver<String>, sink: Sink) -> Forwarder {
        let (flush, flushes) = crossbeam_channel::unbounded::<Sender<()>>();
        let panic = Arc::new(Mutex::new(None));
        let slot = panic.clone();
        std::thread::Builder::new()
            .name("repl-output".into())
            .spawn(move || {
                let out = |line: String| forward_stdout(line, &sink, &slot);
                let err = |line: String| sink(stream(Stdio::Stderr, line + "\n"));
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

fn stream(name: Stdio, text: String) -> JupyterMessageContent {
    JupyterMessageContent::StreamContent(StreamContent { name, text })
}

fn forward_stdout(line: String, sink: &Sink, panic: &Mutex<Option<Event>>) {
    let (text, event) = Event::split_line(&line);
    let Some(event) = event else {
        return sink(stream(Stdio::Stdout, line + "\n"));
    };
    if !text.is_empty() {
        sink(stream(Stdio::Stdout, text.to_string()));
    }
    match event {
        Ok(e @ (Event::Panic { .. } | Event::Error { .. })) => *panic.lock().expect("panic slot") = Some(e),
        Ok(Event::Partial { text }) => sink(stream(Stdio::Stdout, text)),
        Ok(Event::Clear { wait }) => sink(JupyterMessageContent::ClearOutput(ClearOutput { wait })),
        Ok(Event::Display { data, metadata, display_id, update }) => {
            let Ok(data) = serde_json::from_value::<Media>(serde_json::Value::Object(data)) else {
                return sink(stream(Stdio::Stderr, "glassbox: a display with unreadable data was dropped\n".into()));
            };
            let transient = Transient { display_id };
            sink(match (update, transient.display_id.is_some()) {
                (true, true) => {
                    JupyterMessageContent::UpdateDisplayData(UpdateDisplayData { data, metadata, transient })
                }
                _ => JupyterMessageContent::DisplayData(DisplayData { data, metadata, transient: Some(transient) }),
            })
        }
        Err(e) => sink(stream(Stdio::Stderr, format!("glassbox: unreadable event from the REPL: {e}\n"))),
    }
}

impl commands::LiveValues for Session {
    /// Asks the REPL for the model's stages: the library renders them as JSON, which comes
    /// back through evcxr's display content.
    fn stages(&mut self, model: &str) -> Vec<String> {
        if !model.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Vec::new();
        }
        let code = format!("glassbox::models::stage_names_json(&{model})");
        match self.ctx.execute(&code) {
            Ok(out) => out
                .content_by_mime_type
                .get("application/json")
                .and_then(|j| serde_json::from_str::<Vec<String>>(j).ok())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::line_of_statement;

    #[test]
    fn a_missing_semicolon_does_not_name_generated_code() {
        assert_eq!(
            super::in_cell_terms("expected `;`, found `evcxr_variable_store`"),
            "expected `;` at the end of this statement"
        );
        assert_eq!(
            super::in_cell_terms("expected `;`, found keyword `fn`"),
            "expected `;` at the end of this statement"
        );
        assert_eq!(super::in_cell_terms("expected `,`, found `x`"), "expected `,`, found `x`");
        assert_eq!(
            super::in_cell_terms("error: expected `;`, found `evcxr_variable_store`"),
            "error: expected `;` at the end of this statement"
        );
    }

    #[test]
    fn a_panic_is_placed_on_the_line_that_holds_its_statement() {
        let cell = "let v: Vec<i32> = vec![]; glassbox::show_result!(v[3]);";
        assert_eq!(line_of_statement(cell, "glassbox::show_result!(v[3]);"), Some(1));
        let cell = "let a = 1;\nlet b = a;\nlet b = a;";
        assert_eq!(line_of_statement(cell, "let a = 1;"), Some(1));
        assert_eq!(line_of_statement(cell, "let b = a;"), None);
        assert_eq!(line_of_statement(cell, ""), None);
    }
}
