//! The Jupyter kernel: protocol ([`wire`], [`connection`], [`server`], [`iopub`]), its
//! process tree ([`processes`], [`lifeline`]), the Rust REPL
//! ([`repl`]), the execute state machine ([`execute`]) and installation ([`install`]).

pub mod bench;
pub mod child;
pub mod commands;
pub mod complete;
pub mod connection;
pub mod env;
pub mod execute;
pub mod history;
pub mod install;
pub mod interrupt;
pub mod iopub;
pub mod lifeline;
pub mod processes;
pub mod repl;
pub mod server;
pub mod wire;
