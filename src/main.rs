//! The `glassbox` binary: the Jupyter kernel, its installer, and (through evcxr's runtime
//! hook) the REPL child process that runs notebook cells.

use anyhow::Result;
use clap::{Parser, Subcommand};
use glassbox::kernel::{bench, child, connection, env, install, server};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "glassbox", version, about = "A Jupyter kernel for looking inside deep vision networks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the kernel (Jupyter starts this with a connection file).
    Kernel {
        #[arg(long, value_name = "FILE")]
        connection_file: PathBuf,
    },
    /// Measure glassbox against a baseline taken in the same run.
    Bench {
        #[arg(value_enum)]
        what: BenchTarget,
    },
    /// Install the kernelspec so Jupyter can start glassbox.
    Install {
        /// Into the user's Jupyter data directory (the default).
        #[arg(long, conflicts_with = "prefix")]
        user: bool,
        /// Into PREFIX/share/jupyter, e.g. a virtual environment.
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BenchTarget {
    /// Round-trip latency of kernel_info, a trivial cell, `:vars` and a completion.
    Kernel,
    /// One-pass AUiC against a per-threshold implementation, NetDissect and a plain read.
    Auic,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

fn main() -> Result<()> {
    // This binary is also evcxr's child process; in that role the hook runs cells and never
    // returns, so it must come before anything else.
    if child::is_repl_child() {
        glassbox::runtime::share_with_cells();
        if let Err(e) = child::relay_stdout() {
            eprintln!("glassbox: partial lines will wait for their newline: {e}");
        }
    }
    evcxr::runtime_hook();
    env::prepare_process();
    match Cli::parse().command {
        Command::Kernel { connection_file } => {
            let info = connection::read(&connection_file)?;
            runtime()?.block_on(server::run(info))
        }
        Command::Bench { what: BenchTarget::Kernel } => {
            let exe = std::env::current_exe()?;
            runtime()?.block_on(bench::kernel(&exe))
        }
        Command::Bench { what: BenchTarget::Auic } => {
            println!("{}", glassbox::metrics::bench::report(Default::default(), glassbox::device()));
            Ok(())
        }
        Command::Install { user: _, prefix } => {
            let target = prefix.map_or(install::Target::User, install::Target::Prefix);
            let exe = std::env::current_exe()?.canonicalize()?;
            let dir = install::install(&target, &exe)?;
            println!("installed the glassbox kernelspec in {}", dir.display());
            Ok(())
        }
    }
}
