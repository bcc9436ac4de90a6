//! Interrupting a running cell without losing the session (messaging spec: `interrupt_mode`
//! "message").
//!
//! The control channel asks. While the cell is still compiling, the compiler processes evcxr
//! started are ended: the compilation fails, no user code ran, and the session is untouched.
//! Once the cell runs, the REPL child gets SIGINT, which glassbox loops notice at their next
//! step (see the library's `interrupt` module) and stop, keeping every variable; a cell
//! waiting for `input()` is answered at once (see [`Interrupter::requested`]). SIGINT is
//! repeated while the cell runs. Code that never checks is given [`GRACE`] of running time;
//! then the child is killed, evcxr starts a new one, and the error names the variables that
//! were lost.

use super::processes;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a cell may ignore an interrupt before the REPL child is restarted.
pub const GRACE: Duration = Duration::from_secs(3);
const RESEND: Duration = Duration::from_millis(400);
/// How soon a compilation that outlived its cancellation is looked for again.
const CHECK: Duration = Duration::from_millis(50);

#[derive(Debug, Default)]
struct State {
    pid: Option<u32>,
    /// The cell now running, by number.
    running: Option<u64>,
    next_cell: u64,
    requested: bool,
    /// A compilation of the running cell was ended by the interrupt.
    compile_cancelled: bool,
}

/// How a cell ended, as far as interrupts go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// No interrupt arrived while it ran.
    Completed,
    /// Interrupted while its code ran.
    Interrupted,
    /// Interrupted while it compiled: no code of it ran.
    CompileCancelled,
}

/// Shared by the control channel (which interrupts) and the REPL thread (which runs cells).
#[derive(Debug, Clone, Default)]
pub struct Interrupter {
    state: Arc<Mutex<State>>,
}

impl Interrupter {
    /// The REPL child's process id, once known and after every restart.
    pub fn set_child(&self, pid: Option<u32>) {
        self.lock().pid = pid;
    }

    /// A cell starts running.
    pub fn begin(&self) {
        let mut s = self.lock();
        s.next_cell += 1;
        s.running = Some(s.next_cell);
        s.requested = false;
        s.compile_cancelled = false;
    }

    /// The cell ended; whether, and when, it was interrupted.
    pub fn end(&self) -> Ending {
        let mut s = self.lock();
        s.running = None;
        match (std::mem::take(&mut s.requested), std::mem::take(&mut s.compile_cancelled)) {
            (false, _) => Ending::Completed,
            (true, true) => Ending::CompileCancelled,
            (true, false) => Ending::Interrupted,
        }
    }

    /// Whether the running cell has been interrupted: what a wait for input watches.
    pub fn requested(&self) -> bool {
        self.lock().requested
    }

    /// Interrupts the running cell, if any, escalating on a thread of its own. Returns whether
    /// a cell was running.
    pub fn interrupt(&self) -> bool {
        let (cell, pid) = {
            let mut s = self.lock();
            let (Some(cell), Some(pid)) = (s.running, s.pid) else { return false };
            s.requested = true;
            (cell, pid)
        };
        let this = self.clone();
        std::thread::spawn(move || {
            // The grace period counts time the cell's code runs, not time it compiles.
            let mut running_since = None;
            while this.still_running(cell) {
                let compilers = processes::compilers(std::process::id(), pid);
                if !compilers.is_empty() {
                    processes::signal_all(&compilers, libc::SIGKILL);
                    this.lock().compile_cancelled = true;
                    running_since = None;
                    std::thread::sleep(CHECK);
                    continue;
                }
                let since = *running_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= GRACE {
                    signal(pid, libc::SIGKILL);
                    break;
                }
                signal(pid, libc::SIGINT);
                std::thread::sleep(RESEND);
            }
        });
        true
    }

    fn still_running(&self, cell: u64) -> bool {
        self.lock().running == Some(cell)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("interrupt state")
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    processes::signal_all(&[pid], sig);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_interrupt_between_cells() {
        let i = Interrupter::default();
        i.set_child(Some(u32::MAX)); // never signalled: no cell runs
        assert!(!i.interrupt());
        i.begin();
        assert_eq!(i.end(), Ending::Completed);
    }

    #[test]
    fn a_cooperative_child_stops_and_keeps_running() {
        let _tree = processes::tree_lock();
        // A real process that ignores nothing: `sleep` dies of SIGINT, standing in for the
        // escalation path; the request is recorded for the cell either way.
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let i = Interrupter::default();
        i.set_child(Some(child.id()));
        i.begin();
        assert!(i.interrupt());
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert_eq!(i.end(), Ending::Interrupted, "the cell is reported as interrupted");
        assert_eq!(i.end(), Ending::Completed, "and the next one is not");
    }

    #[test]
    fn a_child_that_ignores_sigint_is_killed_after_the_grace_period() {
        let _tree = processes::tree_lock();
        // The child says when it ignores SIGINT, so a loaded machine cannot interrupt it first.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "trap '' INT; echo ready; exec sleep 30"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut ready).unwrap();
        assert_eq!(ready, "ready\n");
        let i = Interrupter::default();
        i.set_child(Some(child.id()));
        i.begin();
        let started = Instant::now();
        i.interrupt();
        child.wait().unwrap();
        let took = started.elapsed();
        assert!(took >= GRACE && took < GRACE + Duration::from_secs(2), "{took:?}");
        i.end();
    }
}
