//! Progress of long work as one live display: steps, rate, ETA and named metrics (loss, ...),
//! updated in place at most ten times a second, and a check for interrupts at every step.
//! Outside a kernel it is one line redrawn in place on a terminal, and a few plain lines in
//! a log (cargo test, CI): the start, each fifth of the way, the end.
//!
//! ```no_run
//! # use glassbox::progress::Progress;
//! # fn main() -> Result<(), glassbox::interrupt::Interrupted> {
//! let mut progress = Progress::new("training", Some(100));
//! for step in 0..100 {
//!     let loss = 1.0 / (step + 1) as f64;
//!     progress.metric("loss", loss);
//!     progress.step()?; // Err(Interrupted) when the user interrupts the kernel
//! }
//! progress.finish();
//! # Ok(()) }
//! ```

use crate::display::{self, Handle, Output, Render};
use crate::interrupt::{Interrupted, Watch};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Redraws are throttled to this interval (at most ~10 per second).
const MIN_REDRAW: Duration = Duration::from_millis(100);
/// A log gets a line at each of these parts of a known total...
const LOG_PARTS: u64 = 5;
/// ... or this often when the total is unknown.
const LOG_EVERY: Duration = Duration::from_secs(30);

pub struct Progress {
    label: String,
    total: Option<u64>,
    done: u64,
    metrics: Vec<(String, f64)>,
    started: Instant,
    last_drawn: Option<Instant>,
    handle: Option<Handle>,
    watch: Watch,
    finished: bool,
    /// A step reported an interrupt: the closing line is drawn then, since loops that stop
    /// with `?` never reach [`Progress::finish`].
    interrupted: bool,
    /// The count at which the closing line was drawn.
    closed_at: Option<u64>,
    /// The part of the total and the time of the last plain log line.
    logged: Option<(u64, Instant)>,
}

impl Progress {
    /// Starts and shows a progress display; `total` steps if known.
    pub fn new(label: impl Into<String>, total: Option<u64>) -> Self {
        let mut p = Progress {
            label: label.into(),
            total,
            done: 0,
            metrics: Vec::new(),
            started: Instant::now(),
            last_drawn: None,
            handle: None,
            watch: Watch::start(),
            finished: false,
            interrupted: false,
            closed_at: None,
            logged: None,
        };
        p.draw();
        p
    }

    /// Records a named metric shown beside the bar (the latest value wins).
    pub fn metric(&mut self, name: &str, value: f64) {
        match self.metrics.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.metrics.push((name.to_owned(), value)),
        }
    }

    /// One step done. Fails once the user has interrupted, so loops stop at a step boundary
    /// with `?` and keep what they have done.
    pub fn step(&mut self) -> Result<(), Interrupted> {
        self.advance(1)
    }

    /// `n` steps done.
    pub fn advance(&mut self, n: u64) -> Result<(), Interrupted> {
        self.done += n;
        let checked = self.watch.check();
        if checked.is_err() && !self.interrupted {
            self.interrupted = true;
            self.draw();
        } else if !self.interrupted && self.last_drawn.is_none_or(|t| t.elapsed() >= MIN_REDRAW) {
            // After the interrupt's closing line, further steps (a caller that ignored the
            // error) would only redraw it, and add lines to a log.
            self.draw();
        }
        checked
    }

    pub fn done(&self) -> u64 {
        self.done
    }

    /// Steps per second so far.
    pub fn rate(&self) -> f64 {
        self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    /// Draws the final state: done, or stopped or interrupted short of the total.
    pub fn finish(mut self) {
        self.close();
    }

    fn close(&mut self) {
        self.finished = true;
        // After an interrupt the closing line is usually drawn already; a second would repeat
        // it on a terminal and in a log.
        if self.closed_at != Some(self.done) {
            self.draw();
        }
    }

    /// Whether the display shows its last line: finished, or cut short by an interrupt.
    fn closing(&self) -> bool {
        self.finished || self.interrupted
    }

    /// Whether the known total was reached; with an unknown total, whether the work ran
    /// to its end rather than being interrupted.
    fn completed(&self) -> bool {
        match self.total {
            Some(total) => self.done >= total,
            None => !self.interrupted,
        }
    }

    fn draw(&mut self) {
        self.last_drawn = Some(Instant::now());
        if self.closing() {
            self.closed_at = Some(self.done);
        }
        let out = self.render();
        match &self.handle {
            Some(h) => h.update(&out),
            None if crate::runtime::in_kernel() => self.handle = Some(display::show(&out)),
            None => {}
        }
        if !crate::runtime::in_kernel() {
            let mut err = std::io::stderr().lock();
            if err.is_terminal() {
                let _ = write!(err, "\r{}{}", self.line(), if self.closing() { "\n" } else { "" });
            } else if self.log_line_due() {
                self.logged = Some((self.part(), Instant::now()));
                let _ = writeln!(err, "{}", self.line());
            }
            let _ = err.flush();
        }
    }

    /// Whether a log without a terminal gets a line now: the first draw, the first draw in
    /// each new part of a known total (or after [`LOG_EVERY`] without one), and the end.
    fn log_line_due(&self) -> bool {
        match (self.logged, self.total) {
            _ if self.closing() => true,
            (None, _) => true,
            (Some((part, _)), Some(_)) => self.part() > part,
            (Some((_, at)), None) => at.elapsed() >= LOG_EVERY,
        }
    }

    /// Which of the [`LOG_PARTS`] parts of the total is under way; the end is left to
    /// [`Progress::finish`].
    fn part(&self) -> u64 {
        self.fraction().map_or(0, |f| ((f * LOG_PARTS as f64) as u64).min(LOG_PARTS - 1))
    }

    fn eta(&self) -> Option<Duration> {
        let total = self.total?;
        let rate = self.rate();
        (self.done > 0 && rate > 0.0).then(|| Duration::from_secs_f64(total.saturating_sub(self.done) as f64 / rate))
    }

    fn fraction(&self) -> Option<f64> {
        self.total.map(|t| if t == 0 { 1.0 } else { (self.done as f64 / t as f64).min(1.0) })
    }

    fn metrics_text(&self) -> String {
        self.metrics.iter().map(|(n, v)| format!("{n}={}", metric_value(*v))).collect::<Vec<_>>().join(" ")
    }

    /// The text form: `training [#####.....] 50/100 12.3 it/s ETA 4s loss=0.1230`; at the end
    /// `... 100/100 12.3 it/s done in 8.1s ...`, or, short of the total,
    /// `training [#.........] interrupted at 13/100 after 1.1s, 12.3 it/s loss=0.4410`
    /// (`stopped at` when it finished early without an interrupt).
    pub fn line(&self) -> String {
        let bar = match self.fraction() {
            Some(f) => {
                let filled = (f * 20.0).round() as usize;
                format!(" [{}{}]", "#".repeat(filled), ".".repeat(20 - filled))
            }
            None => String::new(),
        };
        let count = match self.total {
            Some(t) => format!("{}/{t}", self.done),
            None => self.done.to_string(),
        };
        let metrics = self.metrics_text();
        let metrics = if metrics.is_empty() { metrics } else { format!(" {metrics}") };
        let (label, rate, secs) = (&self.label, self.rate(), self.started.elapsed().as_secs_f64());
        if self.closing() && !self.completed() {
            let how = if self.interrupted { "interrupted" } else { "stopped" };
            return format!("{label}{bar} {how} at {count} after {secs:.1}s, {rate:.1} it/s{metrics}");
        }
        let eta = match (self.closing(), self.eta()) {
            (true, _) => format!(" done in {secs:.1}s"),
            (false, Some(eta)) => format!(" ETA {:.0}s", eta.as_secs_f64()),
            (false, None) => String::new(),
        };
        format!("{label}{bar} {count} {rate:.1} it/s{eta}{metrics}")
    }
}

/// A metric as the line and the HTML form show it: counts (`epoch=3`) without decimals,
/// measures (`loss=0.1230`) to four. From 2^52 (about 4.5e15) up every f64 is whole, so
/// being whole says nothing about a value that large; those keep the decimal form.
fn metric_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.4}")
    }
}

impl Render for Progress {
    fn render(&self) -> Output {
        let pct = self.fraction().map(|f| f * 100.0);
        let bar = match pct {
            Some(p) => format!(
                "<div style=\"width:24em;height:0.9em;background:#e4e8ee;display:inline-block;vertical-align:middle\">\
                 <div style=\"width:{p:.1}%;height:100%;background:#3b6ea8\"></div></div> "
            ),
            None => String::new(),
        };
        let html = format!(
            "<div style=\"font-family:monospace\"><b>{}</b> {bar}{}</div>",
            crate::display::escape(&self.label),
            crate::display::escape(self.line().strip_prefix(self.label.as_str()).unwrap_or_default()),
        );
        Output::html(html).and(Output::text(self.line()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_count_bar_and_metrics() {
        let _serial = crate::interrupt::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut p = Progress::new("fit", Some(4));
        p.metric("loss", 0.5);
        p.step().unwrap();
        p.step().unwrap();
        p.metric("loss", 0.25);
        let line = p.line();
        assert!(line.starts_with("fit [##########..........] 2/4"), "{line}");
        assert!(line.contains("loss=0.2500"), "{line}");
        assert!(line.contains("ETA"), "{line}");
    }

    #[test]
    fn a_log_gets_the_start_each_fifth_and_the_end() {
        let mut p = Progress::new("log", Some(50));
        p.logged = Some((0, Instant::now()));
        let mut lines = vec![p.done()];
        for _ in 0..50 {
            p.done += 1;
            if p.log_line_due() {
                p.logged = Some((p.part(), Instant::now()));
                lines.push(p.done());
            }
        }
        p.finished = true;
        assert!(p.log_line_due());
        assert_eq!(lines, [0, 10, 20, 30, 40]);
        let mut unknown = Progress::new("scan", None);
        unknown.logged = Some((0, Instant::now()));
        unknown.done = 1000;
        assert!(!unknown.log_line_due());
    }

    #[test]
    fn html_and_text_forms_are_rendered() {
        let p = Progress::new("scan <all>", None);
        let out = p.render();
        assert!(out.data()["text/html"].as_str().unwrap().contains("scan &lt;all&gt;"));
        assert!(out.data()["text/plain"].as_str().unwrap().starts_with("scan <all> 0"));
    }

    #[test]
    fn an_interrupt_ends_the_loop_at_a_step() {
        let _serial = crate::interrupt::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut p = Progress::new("loop", Some(25000));
        p.step().unwrap();
        crate::interrupt::request();
        assert_eq!(p.step(), Err(Interrupted));
        assert_eq!(p.done(), 2);
        // The closing line is drawn at the interrupt, for loops that leave with `?`.
        assert_eq!(p.closed_at, Some(2));
        let line = p.line();
        assert!(line.starts_with("loop [....................] interrupted at 2/25000 after "), "{line}");
        assert!(!line.contains("done"), "{line}");
        let html = p.render().data()["text/html"].as_str().unwrap().to_owned();
        assert!(html.contains("interrupted at 2/25000 after "), "{html}");
        // What train.rs does after an interrupt: the line stays honest.
        p.close();
        assert!(p.line().contains("interrupted at 2/25000"), "{}", p.line());
    }

    #[test]
    fn finishing_says_done_only_at_the_total() {
        let closed = |total: Option<u64>, done: u64, interrupted: bool| {
            let mut p = Progress::new("scan", total);
            p.done = done;
            p.interrupted = interrupted;
            p.close();
            (p.line(), p.render().data()["text/html"].as_str().unwrap().to_owned())
        };
        let (line, html) = closed(Some(25000), 132, false);
        assert!(line.starts_with("scan [....................] stopped at 132/25000 after "), "{line}");
        assert!(html.contains("stopped at 132/25000 after ") && !html.contains("done"), "{html}");
        let (line, html) = closed(Some(25000), 25000, false);
        assert!(line.contains(" 25000/25000 ") && line.contains(" done in "), "{line}");
        assert!(html.contains(" done in "), "{html}");
        // An interrupt at the last step still finished the work.
        assert!(closed(Some(10), 10, true).0.contains(" done in "));
        assert!(closed(None, 132, false).0.contains(" done in "));
        let (line, _) = closed(None, 132, true);
        assert!(line.starts_with("scan interrupted at 132 after "), "{line}");
    }

    #[test]
    fn whole_metrics_print_as_integers() {
        assert_eq!(metric_value(11.0), "11");
        assert_eq!(metric_value(-3.0), "-3");
        assert_eq!(metric_value(0.0), "0");
        assert_eq!(metric_value(-0.0), "0");
        assert_eq!(metric_value(0.123), "0.1230");
        assert_eq!(metric_value(2.5), "2.5000");
        assert_eq!(metric_value(1e15), "1000000000000000.0000");
        assert_eq!(metric_value(f64::NAN), "NaN");
        assert_eq!(metric_value(f64::INFINITY), "inf");
        let mut p = Progress::new("fit", None);
        p.metric("i", 11.0);
        p.metric("loss", 0.123);
        assert!(p.line().ends_with(" i=11 loss=0.1230"), "{}", p.line());
        assert!(p.render().data()["text/html"].as_str().unwrap().contains(" i=11 loss=0.1230"));
    }
}
