//! rust-analyzer off the REPL thread. evcxr brings the analysis up to date with the code on
//! the REPL thread, which is cheap; the query then runs on a thread of its own against a
//! snapshot. So neither a cell nor a request waits for rust-analyzer's first analysis of
//! glassbox and tch (9-12 s on 2 cores). The next change of the analysed code cancels a
//! running query, and salsa keeps what the query had computed of the libraries, which do not
//! change: asking again resumes the work instead of starting it over.

use crossbeam_channel::Receiver;
use evcxr::{AnalysisCancelled, Completions, Pending, PendingCompletions};
use std::time::{Duration, Instant};

/// How long a completion or inspection request waits for rust-analyzer. Warm, a completion
/// takes 0.13-0.23 s; during the first analysis it would take seconds, and JupyterLab drops
/// an answer slower than 1 s. A later request for the same code finds the work done.
pub const BUDGET: Duration = Duration::from_millis(250);

/// rust-analyzer's own worker threads use this stack size: its queries recurse deeply.
const STACK_SIZE: usize = 8 << 20;

/// What became of a query.
pub type Outcome<T = Completions> = Result<T, Failure>;

#[derive(Debug)]
pub enum Failure {
    /// A newer change of the analysed code came first.
    Cancelled,
    /// rust-analyzer failed or panicked.
    Failed(String),
}

/// Resolves `pending` on a thread of its own and returns the receiver of its outcome.
pub fn spawn<T: Send + 'static>(pending: Pending<T>) -> Receiver<Outcome<T>> {
    let (done, outcome) = crossbeam_channel::bounded(1);
    let resolve = move || {
        let resolved = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pending.resolve()));
        let _ = done.send(match resolved {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if e.is::<AnalysisCancelled>() => Err(Failure::Cancelled),
            Ok(Err(e)) => Err(Failure::Failed(e.to_string())),
            Err(_) => Err(Failure::Failed("rust-analyzer panicked".into())),
        });
    };
    if let Err(e) = std::thread::Builder::new().name("rust-analyzer".into()).stack_size(STACK_SIZE).spawn(resolve) {
        let (done, outcome) = crossbeam_channel::bounded(1);
        let _ = done.send(Err(Failure::Failed(format!("no thread for rust-analyzer: {e}"))));
        return outcome;
    }
    outcome
}

/// Why an answer holds nothing from rust-analyzer. The kernel says it in the reply's
/// metadata, so a client (or a test) knows that asking again can find more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unready {
    /// The first analysis of the libraries is running (see [`WarmUp`]).
    WarmingUp,
    /// The query missed [`BUDGET`]; it goes on, so asking again finds its work done.
    Late,
}

impl Unready {
    pub fn as_str(self) -> &'static str {
        match self {
            Unready::WarmingUp => "warming up",
            Unready::Late => "answering late",
        }
    }
}

/// An answer to a completion or inspection request, and why rust-analyzer had no part in it.
#[derive(Debug)]
pub struct Answer<T> {
    pub value: T,
    pub unready: Option<Unready>,
}

impl<T> Answer<T> {
    pub fn ready(value: T) -> Answer<T> {
        Answer { value, unready: None }
    }

    pub fn unready(value: T, why: Unready) -> Answer<T> {
        Answer { value, unready: Some(why) }
    }
}

/// What `pending` gives, or [`Unready::Late`] if it does not come within `budget`; the query
/// goes on after that, warming the analysis for the next request. A cancelled or failed
/// query gives `None`.
pub fn within<T: Send + 'static>(pending: Pending<T>, budget: Duration) -> Result<Option<T>, Unready> {
    match spawn(pending).recv_timeout(budget) {
        Ok(outcome) => Ok(outcome.ok()),
        Err(_) => Err(Unready::Late),
    }
}

/// What completion offers before rust-analyzer is ready: the session's variables whose names
/// start with the word before `cursor` (a byte offset), unless that word follows `.` or `::`
/// (members need rust-analyzer). The replaced range is that word, in bytes.
pub fn variables_named_like<'a>(
    code: &str,
    cursor: usize,
    variables: impl Iterator<Item = &'a str>,
) -> (usize, usize, Vec<String>) {
    let before = &code[..cursor];
    let start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
        .last()
        .map_or(cursor, |(i, _)| i);
    let word = &code[start..cursor];
    let member = before[..start].ends_with('.') || before[..start].ends_with("::");
    if word.is_empty() || member || word.starts_with(|c: char| c.is_ascii_digit()) {
        return (cursor, cursor, Vec::new());
    }
    let mut names: Vec<String> = variables.filter(|n| n.starts_with(word)).map(str::to_owned).collect();
    names.sort();
    (start, cursor, names)
}

/// Completions that have rust-analyzer load what later ones need, in order: methods of a
/// library type, then of a standard one, which also has rust-analyzer gather the trait
/// impls of every crate (the first user completion would otherwise pay for it).
const STEPS: &[&str] = &[
    "let glassbox_warm_up = Tensor::zeros([1], (Kind::Float, device));\nglassbox_warm_up.",
    "let glassbox_warm_up: Vec<i32> = Vec::new();\nglassbox_warm_up.",
];

/// Warming rust-analyzer up while the kernel is idle, one step at a time; a step that gave
/// way to other code is asked again, and resumes.
pub struct WarmUp {
    next: usize,
    running: Option<Receiver<Outcome>>,
    started: Option<Instant>,
    /// Time the REPL thread spent bringing the analysis up to date for the steps.
    preparing: Duration,
}

/// How the warm-up ended.
#[derive(Debug)]
pub enum Finished {
    /// Every step answered, `took` after the first began; `preparing` of it was spent on the
    /// REPL thread, where a request waits.
    Warm {
        took: Duration,
        preparing: Duration,
    },
    Failed(String),
}

impl WarmUp {
    pub fn new() -> WarmUp {
        WarmUp { next: 0, running: None, started: None, preparing: Duration::ZERO }
    }

    /// The code of the step to ask for now: none while one runs or once all have answered.
    pub fn due(&self) -> Option<&'static str> {
        self.running.is_none().then(|| STEPS.get(self.next).copied()).flatten()
    }

    /// Whether the warm-up has ended, warm or failed. Until then a query on other code would
    /// cancel the running step, which can take rust-analyzer seconds to notice, for an answer
    /// it could not give in time anyway.
    pub fn is_over(&self) -> bool {
        self.next >= STEPS.len()
    }

    /// Runs the step [`WarmUp::due`] gave, prepared on the REPL thread since `prepared_from`.
    pub fn run(&mut self, pending: PendingCompletions, prepared_from: Instant) {
        self.started.get_or_insert(prepared_from);
        self.preparing += prepared_from.elapsed();
        self.running = Some(spawn(pending));
    }

    /// The running step's outcome arrives here; never, while none runs.
    pub fn outcome(&self) -> Receiver<Outcome> {
        self.running.clone().unwrap_or_else(crossbeam_channel::never)
    }

    /// Takes the running step's outcome; says how the warm-up ended once it has.
    pub fn answered(&mut self, outcome: Outcome) -> Option<Finished> {
        self.running = None;
        match outcome {
            Ok(_) => {
                self.next += 1;
                let took = self.started.map_or(Duration::ZERO, |s| s.elapsed());
                (self.next == STEPS.len()).then_some(Finished::Warm { took, preparing: self.preparing })
            }
            Err(Failure::Cancelled) => None,
            Err(Failure::Failed(why)) => {
                self.next = STEPS.len();
                Some(Finished::Failed(why))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evcxr::Completions;

    /// A budget no scheduling delay reaches, for the cases that test what an answer becomes
    /// rather than how fast it comes: `cargo test` runs these beside model training on as few
    /// as two cores, where a new thread can wait longer than [`BUDGET`] to start.
    const PATIENT: Duration = Duration::from_secs(60);

    fn pending(outcome: fn() -> anyhow::Result<Completions>) -> PendingCompletions {
        PendingCompletions::from_fn(outcome)
    }

    #[test]
    fn before_rust_analyzer_is_ready_completion_offers_variables_by_prefix_but_no_members() {
        let names = ["zoo", "zeta_net", "device", "z"];
        let at_end = |code: &str| variables_named_like(code, code.len(), names.iter().copied());
        assert_eq!(at_end("let a = 1;\nz"), (11, 12, vec!["z".into(), "zeta_net".into(), "zoo".into()]));
        assert_eq!(at_end("f(&zo"), (3, 5, vec!["zoo".into()]));
        assert_eq!(at_end("héllo + de"), (9, 11, vec!["device".into()]));
        assert_eq!(at_end("zoo.de"), (6, 6, vec![]), "a member needs rust-analyzer");
        assert_eq!(at_end("glassbox::zo"), (12, 12, vec![]));
        assert_eq!(at_end("x + "), (4, 4, vec![]));
        assert_eq!(variables_named_like("zo + 1", 2, names.iter().copied()), (0, 2, vec!["zoo".into()]));
    }

    #[test]
    fn a_cancelled_step_is_due_again_and_the_warm_up_ends_after_the_last_step() {
        let mut warm = WarmUp::new();
        let first = warm.due().expect("a first step");
        warm.run(pending(|| Err(AnalysisCancelled.into())), Instant::now());
        assert_eq!(warm.due(), None, "nothing is due while a step runs");
        let outcome = warm.outcome().recv().unwrap();
        assert!(matches!(outcome, Err(Failure::Cancelled)));
        assert!(warm.answered(outcome).is_none());
        assert_eq!(warm.due(), Some(first), "a cancelled step is asked again");
        for step in 0..STEPS.len() {
            assert!(!warm.is_over());
            warm.run(pending(|| Ok(Completions::default())), Instant::now());
            let finished = warm.answered(warm.outcome().recv().unwrap());
            assert_eq!(finished.is_some(), step + 1 == STEPS.len());
        }
        assert!(warm.is_over());
        assert_eq!(warm.due(), None);
    }

    #[test]
    fn a_failing_or_panicking_step_ends_the_warm_up_instead_of_retrying_it() {
        for failing in [(|| Err(anyhow::anyhow!("no Cargo.toml"))) as fn() -> _, || panic!("inside rust-analyzer")] {
            let mut warm = WarmUp::new();
            warm.run(pending(failing), Instant::now());
            let finished = warm.answered(warm.outcome().recv().unwrap());
            assert!(matches!(finished, Some(Finished::Failed(_))), "{finished:?}");
            assert!(warm.is_over(), "completion goes to rust-analyzer directly after a failed warm-up");
            assert_eq!(warm.due(), None);
        }
    }

    #[test]
    fn a_slow_query_misses_the_budget_and_finishes_on_its_own() {
        let (release, wait) = crossbeam_channel::bounded::<()>(0);
        let slow = PendingCompletions::from_fn(move || {
            let _ = wait.recv();
            Ok(Completions::default())
        });
        let outcome = spawn(slow);
        assert!(outcome.recv_timeout(Duration::from_millis(50)).is_err(), "the answer cannot be there yet");
        release.send(()).unwrap();
        assert!(matches!(outcome.recv(), Ok(Ok(_))));
        assert!(matches!(within(PendingCompletions::from_fn(|| Ok(Completions::default())), PATIENT), Ok(Some(_))));
    }

    #[test]
    fn a_late_query_says_so_and_a_failed_one_finds_nothing() {
        let (_keep, wait) = crossbeam_channel::bounded::<()>(0);
        let late = PendingCompletions::from_fn(move || {
            let _ = wait.recv_timeout(Duration::from_secs(5));
            Ok(Completions::default())
        });
        assert!(matches!(within(late, Duration::from_millis(20)), Err(Unready::Late)));
        let failed = PendingCompletions::from_fn(|| Err(anyhow::anyhow!("no Cargo.toml")));
        assert!(matches!(within(failed, PATIENT), Ok(None)));
    }
}
