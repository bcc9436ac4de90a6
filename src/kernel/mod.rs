//! The Jupyter kernel: protocol ([`wire`], [`connection`], [`server`], [`iopub`]), its
//! process tree ([`processes`], [`lifeline`]), the Rust REPL
//! ([`repl`]), the execute state machine ([`execute`]) and installation ([`install`]).

pub mod child;
pub mod commands;
pub mod connection;
pub mod env;
pub mod execute;
pub mod final_expression;
pub mod heartbeat;
pub mod history;
pub mod install;
pub mod interrupter;
pub mod iopub;
pub mod is_complete;
pub mod latency;
pub mod lifeline;
pub mod processes;
pub mod repl;
pub mod rust_analysis;
pub mod server;
pub mod wire;

/// Writes a line to the kernel's log, its stderr. Never fails: once the terminal that started
/// the kernel is gone, so may be stderr, and a log line must not end the thread that writes it.
pub fn log(line: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "glassbox: {line}");
}
