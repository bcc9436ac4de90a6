//! A kernel lives no longer than whoever started it. Jupyter's convention: a kernel whose
//! parent process dies exits (ipykernel's parent poller, with `JPY_PARENT_PID` naming the
//! parent). On Linux the parent's death also sends this process SIGTERM (a parent-death
//! signal), so the end is prompt; the poll catches a parent that died before that was set.
//! SIGTERM and SIGHUP end the kernel the same way: the REPL child and any compilation first,
//! then the process, so no build slot or process outlives it.

use super::processes;
use std::time::Duration;

/// How often the parent is looked for.
const POLL: Duration = Duration::from_millis(500);

/// Starts watching; call once, early, in the kernel process.
pub fn watch() {
    let parent = std::os::unix::process::parent_id();
    // SAFETY: prctl with PR_SET_PDEATHSIG and a valid signal number only sets a flag.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
    let named = std::env::var("JPY_PARENT_PID").ok().and_then(|p| p.trim().parse::<u32>().ok()).filter(|&p| p > 1);
    std::thread::Builder::new()
        .name("parent-poll".into())
        .spawn(move || loop {
            if std::os::unix::process::parent_id() != parent || named.is_some_and(|p| !alive(p)) {
                end("the process that started the kernel has exited");
            }
            std::thread::sleep(POLL);
        })
        .expect("spawn the parent poller");
    match signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGHUP]) {
        Ok(mut signals) => {
            std::thread::Builder::new()
                .name("signals".into())
                .spawn(move || {
                    if let Some(signal) = signals.forever().next() {
                        end(if signal == libc::SIGHUP { "hang-up signal" } else { "termination signal" });
                    }
                })
                .expect("spawn the signal watcher");
        }
        Err(e) => super::log(format_args!("SIGTERM will not end the REPL child with the kernel: {e}")),
    }
}

fn alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    let gone = unsafe { libc::kill(pid as libc::pid_t, 0) } != 0
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    !gone
}

fn end(why: &str) -> ! {
    super::log(format_args!("exiting: {why}"));
    processes::kill_descendants();
    std::process::exit(0);
}

/// In the REPL child: die with the kernel, whatever the child is doing when the kernel ends.
pub fn tie_child_to_parent() {
    // SAFETY: as in `watch`.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    // The kernel may have ended before the flag was set.
    if std::os::unix::process::parent_id() == 1 {
        std::process::exit(0);
    }
}
