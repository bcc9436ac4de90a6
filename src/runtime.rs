//! Code that runs inside the REPL child process, where notebook cells execute.
//!
//! The child's stdout is the one ordered channel back to the kernel: evcxr reads it line by
//! line and hands every line that is not its own protocol to the kernel before it reports
//! the cell done. glassbox events ride on that channel as single lines that start with
//! [`MARKER`] followed by a JSON [`Event`]; the kernel takes them out of the stream, so a
//! user never sees them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::io::Write;
use std::sync::atomic::AtomicU64;
use std::sync::{Once, OnceLock};

/// Starts a glassbox event line on the child's stdout. The control characters make a clash
/// with anything a user prints practically impossible.
pub const MARKER: &str = "\u{1}\u{2}glassbox-event:";

/// Something the child tells the kernel while a cell runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A panic in cell code. evcxr catches it and reports the cell as finished, so without
    /// this event the kernel could not turn it into an error reply.
    Panic {
        message: String,
        /// `file:line:column` where the panic was raised, when Rust knows it.
        location: Option<String>,
    },
    /// A rich display (see [`crate::display`]); `update` replaces the display `display_id`.
    Display { data: Map<String, Value>, metadata: Map<String, Value>, display_id: Option<String>, update: bool },
    /// `clear_output`.
    Clear { wait: bool },
    /// A failure with a name of its own (`ModelError`, `DataError`, ...), raised by library
    /// code that runs a command; reported instead of a plain panic.
    Error { ename: String, evalue: String },
    /// Text written without a newline (a `print!("\r{pct}%")` progress line), passed on as
    /// it is instead of waiting for the end of the line.
    Partial { text: String },
}

impl Event {
    /// The line the child writes to stdout for this event.
    pub fn to_line(&self) -> String {
        format!("{MARKER}{}", serde_json::to_string(self).expect("events serialize"))
    }

    /// Splits a stdout line into the user's text before the marker and the event after it.
    /// A line without the marker is all user text.
    pub fn split_line(line: &str) -> (&str, Option<Result<Event, serde_json::Error>>) {
        match line.find(MARKER) {
            None => (line, None),
            Some(at) => {
                let json = &line[at + MARKER.len()..];
                (&line[..at], Some(serde_json::from_str(json)))
            }
        }
    }

    /// Writes the event to stdout, on a line of its own.
    pub fn emit(&self) {
        let mut out = std::io::stdout().lock();
        // No leading newline: after a partial line of user output the marker shares that
        // line, and the kernel splits it off (see `split_line`) without inventing a newline.
        let _ = writeln!(out, "{}", self.to_line());
        let _ = out.flush();
    }
}

/// State that must be one per process. evcxr links the library into every cell's shared
/// object, so each cell has its own copy of every `static`: a counter bumped by one cell
/// would be invisible to the next. The REPL child's host binary owns the one real instance
/// and tells the cells where it is (see [`share_with_cells`]).
#[repr(C)]
pub struct Shared {
    magic: u64,
    /// Interrupts received so far (see [`crate::interrupt`]).
    pub(crate) interrupts: AtomicU64,
    /// The seed set by `:seed` / [`crate::seed::set`].
    pub(crate) seed: AtomicU64,
    /// Display ids handed out so far.
    pub(crate) displays: AtomicU64,
}

/// Names the host's [`Shared`] by address in the child's environment.
const SHARED_ENV: &str = "GLASSBOX_SHARED_STATE";
/// Changes whenever [`Shared`]'s layout does, so a cell built from other sources than the
/// host never reads a struct of another shape.
const LAYOUT_VERSION: u64 = 1;
const MAGIC: u64 = 0x676c_6173_7362_6f78 ^ (LAYOUT_VERSION << 32) ^ std::mem::size_of::<Shared>() as u64;

static LOCAL: Shared = Shared {
    magic: MAGIC,
    interrupts: AtomicU64::new(0),
    seed: AtomicU64::new(crate::seed::DEFAULT_SEED),
    displays: AtomicU64::new(0),
};

/// The process's shared state: the host's inside a kernel's REPL child, else this copy's own.
pub fn shared() -> &'static Shared {
    static RESOLVED: OnceLock<&'static Shared> = OnceLock::new();
    RESOLVED.get_or_init(|| {
        let address = std::env::var(SHARED_ENV).ok().and_then(|a| usize::from_str_radix(&a, 16).ok());
        // SAFETY: only the host binary of this process sets the variable, to the address of its
        // own `LOCAL`, a static that lives as long as the process; the magic number rules out
        // a layout from other sources.
        address.map(|a| unsafe { &*(a as *const Shared) }).filter(|s| s.magic == MAGIC).unwrap_or(&LOCAL)
    })
}

/// Makes this copy's state the one every cell uses. The kernel binary calls it in its REPL
/// child before any cell runs (and before any thread exists: it sets the environment).
pub fn share_with_cells() {
    std::env::set_var(SHARED_ENV, format!("{:x}", &LOCAL as *const Shared as usize));
}

/// What the kernel answers a wait for input with when the cell is interrupted meanwhile: no
/// line a user can type (it holds NUL bytes), so [`input`] can tell it from an answer.
pub const INPUT_INTERRUPTED: &str = "\0glassbox: interrupted while waiting for input\0";

/// Asks the notebook user for a line of text (an `input_request` to the front end); empty
/// when the front end takes no input. An interrupt while it waits ends the cell with
/// `KeyboardInterrupt`, keeping every variable.
pub fn input(prompt: &str) -> String {
    answered(evcxr_input::get_string(prompt))
}

/// Like [`input`], with the typed text hidden.
pub fn password(prompt: &str) -> String {
    answered(evcxr_input::get_password(prompt))
}

fn answered(line: String) -> String {
    if line == INPUT_INTERRUPTED {
        raise("KeyboardInterrupt", "interrupted while waiting for input; every variable is kept");
    }
    line
}

/// Ends the running cell with a named error: the kernel shows `ename: evalue` (instead of a
/// panic) and, as for a panic, keeps the variables of earlier cells.
pub fn raise(ename: &str, evalue: &str) -> ! {
    Event::Error { ename: ename.to_owned(), evalue: evalue.to_owned() }.emit();
    std::panic::panic_any(RaisedError)
}

/// The value of `result`, or else the cell fails with the error's message, named by the
/// error's type (`MetricError`, `SbError`, ...): how the code that `:commands` generate
/// reports a library error.
pub fn or_raise<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| raise(type_base_name(std::any::type_name::<E>()), &e.to_string()))
}

/// A type's own name, as Rust source writes it without its path or generic arguments:
/// `glassbox::inn::interpret::LayerInn<glassbox::models::lenet::LeNet>` is `LayerInn`.
pub fn type_base_name(ty: &str) -> &str {
    let base = ty.split('<').next().unwrap_or(ty).trim();
    base.rsplit("::").next().unwrap_or(base)
}

/// The panic payload of [`raise`]: the hook knows the error was already reported.
struct RaisedError;

/// Set by the kernel in its REPL child's environment.
pub const KERNEL_ENV: &str = "GLASSBOX_KERNEL";

/// Whether this process is a glassbox kernel's REPL child (so events reach a notebook).
pub fn in_kernel() -> bool {
    static IN_KERNEL: OnceLock<bool> = OnceLock::new();
    *IN_KERNEL.get_or_init(|| std::env::var_os(KERNEL_ENV).is_some())
}

/// Prepares the REPL child: reports panics as [`Event::Panic`] and lets the kernel interrupt
/// long glassbox operations (see [`crate::interrupt`]). The kernel shows a panic as the
/// cell's error, so the default message on stderr (which names evcxr's generated source, not
/// the cell) is not printed. Idempotent.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            if info.payload().is::<RaisedError>() {
                return;
            }
            let message = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "panic with a non-string payload".to_string()
            };
            let location = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            Event::Panic { message, location }.emit();
        }));
        crate::interrupt::install_handler();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_library_error_is_named_by_its_type() {
        assert_eq!(type_base_name(std::any::type_name::<crate::metrics::MetricError>()), "MetricError");
        assert_eq!(type_base_name(std::any::type_name::<crate::bottleneck::SbNet>()), "SbNet");
        assert_eq!(type_base_name("glassbox::inn::interpret::LayerInn<glassbox::models::lenet::LeNet>"), "LayerInn");
        assert_eq!(type_base_name("LeNet"), "LeNet");
    }

    #[test]
    fn event_lines_round_trip() {
        let e = Event::Panic { message: "boom".into(), location: Some("src/lib.rs:3:5".into()) };
        let line = format!("partial output{}", e.to_line());
        let (text, event) = Event::split_line(&line);
        assert_eq!(text, "partial output");
        assert_eq!(event.unwrap().unwrap(), e);
    }

    #[test]
    fn shared_state_is_found_through_the_environment_only_with_the_right_magic() {
        // Outside a kernel (no variable) a copy uses its own state.
        assert!(std::ptr::eq(shared(), &LOCAL));
        let fake =
            Shared { magic: 7, interrupts: AtomicU64::new(0), seed: AtomicU64::new(0), displays: AtomicU64::new(0) };
        let address = &fake as *const Shared as usize;
        let resolve = |a: usize| Some(unsafe { &*(a as *const Shared) }).filter(|s| s.magic == MAGIC);
        assert!(resolve(address).is_none());
        assert!(resolve(&LOCAL as *const Shared as usize).is_some());
    }

    #[test]
    fn plain_lines_are_user_text() {
        let (text, event) = Event::split_line("hello");
        assert_eq!(text, "hello");
        assert!(event.is_none());
    }

    #[test]
    fn a_corrupt_event_is_an_error_not_a_panic() {
        let (_, event) = Event::split_line(&format!("{MARKER}{{not json"));
        assert!(event.unwrap().is_err());
    }
}
