//! The `glassbox` binary: the Jupyter kernel, its installer, and (through evcxr's runtime
//! hook) the REPL child process that runs notebook cells.

use anyhow::Result;
use clap::{Parser, Subcommand};
use glassbox::kernel::{child, connection, env, install, latency, lifeline, server};
use glassbox::models::vision::throughput::Config as VisionBench;
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
        /// The largest message taken in on any socket, in bytes (default 16 MiB, or
        /// GLASSBOX_MAX_MESSAGE_BYTES); a peer that sends more is dropped.
        #[arg(long, value_name = "BYTES")]
        max_message_bytes: Option<usize>,
    },
    /// Measure glassbox against a baseline taken in the same run.
    Bench {
        #[command(subcommand)]
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

#[derive(Subcommand)]
enum BenchTarget {
    /// Round-trip latency of kernel_info, a trivial cell, `:vars` and a completion.
    Kernel,
    /// One-pass AUiC against a per-threshold implementation, NetDissect and a plain read.
    Auic,
    /// ResNet-50's forward with taps against the plain forward, memory, and the streaming
    /// dissection of layer3 over N and 4N images.
    Vision {
        /// Images per forward.
        #[arg(long, value_name = "N", default_value_t = VisionBench::default().batch)]
        batch: usize,
        /// Images timed in each forward phase.
        #[arg(long, value_name = "N", default_value_t = VisionBench::default().images)]
        images: usize,
        /// Height and width of the timed images.
        #[arg(long, value_name = "N", default_value_t = VisionBench::default().size)]
        size: i64,
        /// N: the dissection runs over N and then 4N scenes.
        #[arg(long, value_name = "N", default_value_t = VisionBench::default().dissect_images)]
        dissect_images: usize,
        /// Height and width of the dissected scenes.
        #[arg(long, value_name = "N", default_value_t = VisionBench::default().dissect_size)]
        dissect_size: usize,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

fn main() -> Result<()> {
    // This binary is also evcxr's child process; in that role the hook runs cells and never
    // returns, so it must come before anything else.
    if child::is_repl_child() {
        lifeline::tie_child_to_parent();
        glassbox::runtime::share_with_cells();
        if let Err(e) = child::relay_stdout() {
            eprintln!("glassbox: partial lines will wait for their newline: {e}");
        }
    }
    evcxr::runtime_hook();
    env::prepare_process();
    match Cli::parse().command {
        Command::Kernel { connection_file, max_message_bytes } => {
            let info = connection::read(&connection_file)?;
            let mut limits = server::Limits::from_env()?;
            if let Some(bytes) = max_message_bytes {
                limits.max_message_bytes = bytes;
            }
            lifeline::watch();
            // Not dropped: dropping a runtime waits for its threads, and one may still be in
            // a cell whose REPL child is gone. The process ends here instead.
            let runtime = runtime()?;
            runtime.block_on(server::run(info, limits))?;
            std::process::exit(0)
        }
        Command::Bench { what: BenchTarget::Kernel } => {
            let exe = std::env::current_exe()?;
            runtime()?.block_on(latency::kernel(&exe))
        }
        Command::Bench { what: BenchTarget::Auic } => {
            println!("{}", glassbox::metrics::auic_bench::report(Default::default(), glassbox::device()));
            Ok(())
        }
        Command::Bench { what: BenchTarget::Vision { batch, images, size, dissect_images, dissect_size } } => {
            // prepare_process marked this process as a kernel's for its REPL child; the
            // dissection's progress belongs on the terminal here, not in kernel events.
            std::env::remove_var(glassbox::runtime::KERNEL_ENV);
            let config = VisionBench { batch, images, size, dissect_images, dissect_size, ..Default::default() };
            println!("{}", glassbox::models::vision::throughput::report(&config, glassbox::device())?);
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
