//! Set-up inside the REPL child process (this binary re-executed by evcxr), before evcxr's
//! runtime takes over.

use crate::runtime::Event;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Duration;

/// How long text without a newline may wait for the rest of its line before it is passed on.
const PARTIAL_AFTER: Duration = Duration::from_millis(30);

/// Whether this process is evcxr's REPL child.
pub fn is_repl_child() -> bool {
    std::env::var_os("EVCXR_IS_RUNTIME").is_some()
}

/// Puts a relay between the child's stdout and the pipe evcxr reads. evcxr reads whole lines,
/// so `print!("\r{pct}%")` would wait for a newline that a progress line never writes. The
/// relay passes whole lines through unchanged (evcxr's own protocol among them) and hands
/// text that has waited [`PARTIAL_AFTER`] without a newline on as an [`Event::Partial`].
pub fn relay_stdout() -> std::io::Result<()> {
    let (reader, writer) = std::io::pipe()?;
    // SAFETY: plain descriptor calls on fds this process owns; fd 1 stays valid throughout.
    let evcxr_pipe = unsafe {
        let saved = libc::dup(1);
        if saved < 0 || libc::dup2(writer.as_raw_fd(), 1) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        File::from_raw_fd(saved)
    };
    drop(writer);
    std::thread::Builder::new().name("stdout-relay".into()).spawn(move || relay(reader, evcxr_pipe))?;
    Ok(())
}

fn relay(mut from: std::io::PipeReader, mut to: File) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let timeout = if pending.is_empty() { -1 } else { PARTIAL_AFTER.as_millis() as i32 };
        let mut poll = libc::pollfd { fd: from.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut poll, 1, timeout) };
        if ready == 0 {
            let text = String::from_utf8_lossy(&pending).into_owned();
            pending.clear();
            let _ = writeln!(to, "{}", Event::Partial { text }.to_line());
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
        if let Some(end) = pending.iter().rposition(|&b| b == b'\n') {
            let _ = to.write_all(&pending[..=end]);
            pending.drain(..=end);
        }
    }
    let _ = to.write_all(&pending);
}
