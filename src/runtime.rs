//! Code that runs inside the REPL child process, where notebook cells execute.
//!
//! The child's stdout is the one ordered channel back to the kernel: evcxr reads it line by
//! line and hands every line that is not its own protocol to the kernel before it reports
//! the cell done. glassbox events ride on that channel as single lines that start with
//! [`MARKER`] followed by a JSON [`Event`]; the kernel takes them out of the stream, so a
//! user never sees them.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::sync::Once;

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

/// Prepares the REPL child: installs the panic hook that reports panics as [`Event::Panic`].
/// The kernel shows the panic as the cell's error, so the default message on stderr (which
/// names evcxr's generated source, not the cell) is not printed. Idempotent.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "panic with a non-string payload".to_string()
            };
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            Event::Panic { message, location }.emit();
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_round_trip() {
        let e = Event::Panic { message: "boom".into(), location: Some("src/lib.rs:3:5".into()) };
        let line = format!("partial output{}", e.to_line());
        let (text, event) = Event::split_line(&line);
        assert_eq!(text, "partial output");
        assert_eq!(event.unwrap().unwrap(), e);
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
