//! Cooperative interruption of long glassbox work (training, metric passes, data generation).
//!
//! The kernel answers an `interrupt_request` by sending SIGINT to the REPL child; the handler
//! here only counts it. An operation watches from the count at its start: one started before
//! an interrupt is interrupted, one started after it is not. So nothing has to be reset
//! between cells, and an interrupt that arrives while no operation runs cancels nothing later.
//! The count lives in the process-wide [`crate::runtime::shared`] state, because every cell
//! has its own copy of the library's statics.

use std::sync::atomic::Ordering;
use std::sync::Once;

/// A glassbox operation was interrupted by the user; whatever it had done so far (weights
/// trained up to the last step, for example) is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted by the user")]
pub struct Interrupted;

fn count() -> u64 {
    crate::runtime::shared().interrupts.load(Ordering::SeqCst)
}

/// Routes SIGINT to [`request`]. Called by [`crate::runtime::install`] in the REPL child.
pub fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let counter = &crate::runtime::shared().interrupts;
        // SAFETY: the handler only bumps an atomic that lives as long as the process; it
        // allocates nothing and takes no lock.
        let _ = unsafe {
            signal_hook::low_level::register(signal_hook::consts::SIGINT, move || {
                counter.fetch_add(1, Ordering::SeqCst);
            })
        };
    });
}

/// Interrupts every operation running now. What the signal handler does; also usable
/// directly (e.g. from a watchdog thread).
pub fn request() {
    crate::runtime::shared().interrupts.fetch_add(1, Ordering::SeqCst);
}

/// Watches for an interrupt from the moment it was started.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    seen: u64,
}

impl Watch {
    pub fn start() -> Self {
        Watch { seen: count() }
    }

    /// Whether an interrupt arrived since the watch started.
    pub fn interrupted(&self) -> bool {
        count() > self.seen
    }

    /// `Err(Interrupted)` once an interrupt arrived: call at every step boundary.
    pub fn check(&self) -> Result<(), Interrupted> {
        if self.interrupted() {
            Err(Interrupted)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
pub(crate) static TEST_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupt_stops_running_watches_but_not_later_ones() {
        let _serial = TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let running = Watch::start();
        assert_eq!(running.check(), Ok(()));
        request();
        assert_eq!(running.check(), Err(Interrupted));
        let later = Watch::start();
        assert!(!later.interrupted());
    }

    #[test]
    fn sigint_is_caught_and_recorded() {
        let _serial = TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        install_handler();
        let watch = Watch::start();
        signal_hook::low_level::raise(signal_hook::consts::SIGINT).unwrap();
        assert!(watch.interrupted());
    }
}
