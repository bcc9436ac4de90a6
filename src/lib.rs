//! glassbox: look inside deep vision networks from a Jupyter notebook.
//!
//! The library is what notebook cells and `:commands` call. The kernel itself (ZeroMQ,
//! the embedded evcxr REPL) lives behind the default `kernel` feature in [`kernel`], so
//! that cells can depend on this crate with `default-features = false` and never compile
//! the REPL into a cell.

pub mod bottleneck;
pub mod cache;
pub mod cmd;
pub mod data;
pub mod device;
pub mod display;
pub mod inn;
pub mod interrupt;
#[cfg(test)]
pub(crate) mod learned;
pub mod metrics;
pub mod models;
pub mod prelude;
pub mod progress;
pub mod runtime;
pub mod seed;
pub mod suggest;
pub mod vars;
pub mod vars_socket;
pub mod viz;

#[cfg(feature = "kernel")]
pub mod kernel;

/// Re-exported so cells use exactly the tch the library was built with: a second copy
/// of tch in a cell would make its `Tensor` a different type from ours.
pub use tch;

pub use device::device;
pub use models::zoo;

/// The crate version, as shown in the kernel banner and `glassbox --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
