//! Input history (messaging spec: `history_request` with tail, range and search), kept in a
//! JSON-lines file under the cache dir so it survives kernel restarts. Each kernel start is a
//! new session; line numbers are execution counts.

use jupyter_protocol::HistoryEntry;
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    session: usize,
    line: usize,
    input: String,
    #[serde(default)]
    output: String,
}

/// What a client asks for. Read leniently (clients leave out fields the spec lists).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "hist_access_type", rename_all = "lowercase")]
pub enum Query {
    Tail {
        #[serde(default = "ten")]
        n: usize,
        #[serde(default)]
        output: bool,
    },
    Range {
        /// `None` or 0: this session; negative: that many sessions back.
        #[serde(default)]
        session: Option<i64>,
        #[serde(default)]
        start: usize,
        /// Exclusive; `None` or 0: to the end.
        #[serde(default)]
        stop: Option<usize>,
        #[serde(default)]
        output: bool,
    },
    Search {
        #[serde(default = "star")]
        pattern: String,
        #[serde(default)]
        unique: bool,
        #[serde(default)]
        n: Option<usize>,
        #[serde(default)]
        output: bool,
    },
}

fn ten() -> usize {
    10
}
fn star() -> String {
    "*".into()
}

pub struct History {
    path: PathBuf,
    session: usize,
    records: Vec<Record>,
}

impl History {
    /// Opens the history file and starts a new session in it.
    pub fn open(path: PathBuf) -> Self {
        let records: Vec<Record> = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let session = records.iter().map(|r| r.session).max().unwrap_or(0) + 1;
        History { path, session, records }
    }

    pub fn session(&self) -> usize {
        self.session
    }

    /// Stores one executed input (and its plain-text result) in this session.
    pub fn record(&mut self, line: usize, input: &str, output: &str) {
        let r = Record { session: self.session, line, input: input.to_owned(), output: output.to_owned() };
        let appended = std::fs::create_dir_all(self.path.parent().unwrap_or(&self.path)).and_then(|_| {
            let mut f = OpenOptions::new().create(true).append(true).open(&self.path)?;
            writeln!(f, "{}", serde_json::to_string(&r).expect("records serialise"))
        });
        if let Err(e) = appended {
            eprintln!("glassbox: history not saved to {}: {e}", self.path.display());
        }
        self.records.push(r);
    }

    pub fn query(&self, q: &Query) -> Vec<HistoryEntry> {
        let (found, output): (Vec<&Record>, bool) = match q {
            Query::Tail { n, output } => (last(self.records.iter().collect(), *n), *output),
            Query::Range { session, start, stop, output } => {
                let s = match session {
                    None | Some(0) => self.session as i64,
                    Some(s) if *s < 0 => self.session as i64 + s,
                    Some(s) => *s,
                };
                let stop = stop.filter(|&s| s > 0).unwrap_or(usize::MAX);
                let hits = self.records.iter().filter(|r| r.session as i64 == s && r.line >= *start && r.line < stop);
                (hits.collect(), *output)
            }
            Query::Search { pattern, unique, n, output } => {
                let mut hits: Vec<&Record> = self.records.iter().filter(|r| glob(pattern, &r.input)).collect();
                if *unique {
                    // Keep the latest occurrence of each input, in history order.
                    let mut seen = std::collections::HashSet::new();
                    hits = hits.into_iter().rev().filter(|r| seen.insert(r.input.as_str())).collect();
                    hits.reverse();
                }
                (
                    match n {
                        Some(n) => last(hits, *n),
                        None => hits,
                    },
                    *output,
                )
            }
        };
        found
            .into_iter()
            .map(|r| match output {
                true => HistoryEntry::InputOutput(r.session, r.line, (r.input.clone(), r.output.clone())),
                false => HistoryEntry::Input(r.session, r.line, r.input.clone()),
            })
            .collect()
    }
}

fn last(v: Vec<&Record>, n: usize) -> Vec<&Record> {
    let skip = v.len().saturating_sub(n);
    v.into_iter().skip(skip).collect()
}

/// Glob match over the whole input: `*` any run, `?` one character (as IPython's search).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("glassbox-history-{}-{}", std::process::id(), rand_suffix()));
        dir.join("history.jsonl")
    }

    fn rand_suffix() -> u128 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    }

    fn inputs(entries: &[HistoryEntry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match e {
                HistoryEntry::Input(_, _, i) => i.clone(),
                HistoryEntry::InputOutput(_, _, (i, _)) => i.clone(),
            })
            .collect()
    }

    #[test]
    fn survives_restarts_as_new_sessions() {
        let path = temp();
        let mut first = History::open(path.clone());
        first.record(1, "let a = 1;", "");
        first.record(2, "a + 1", "2");
        let mut second = History::open(path.clone());
        assert_eq!(second.session(), first.session() + 1);
        second.record(1, "6 * 7", "42");
        let tail = second.query(&Query::Tail { n: 2, output: true });
        assert_eq!(inputs(&tail), ["a + 1", "6 * 7"]);
        assert!(matches!(&tail[1], HistoryEntry::InputOutput(s, 1, (_, out)) if *s == second.session() && out == "42"));
        let previous = second.query(&Query::Range { session: Some(-1), start: 1, stop: Some(2), output: false });
        assert_eq!(inputs(&previous), ["let a = 1;"]);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn search_globs_dedupes_and_limits() {
        let mut h = History::open(temp());
        for (i, code) in ["6 * 7", "let x = 6;", "6 * 7", "7 * 6", "6 * 7"].iter().enumerate() {
            h.record(i + 1, code, "");
        }
        let q = |pattern: &str, unique, n| Query::Search { pattern: pattern.into(), unique, n, output: false };
        assert_eq!(h.query(&q("6*", false, None)).len(), 3);
        assert_eq!(inputs(&h.query(&q("6*", true, None))), ["6 * 7"]);
        assert_eq!(h.query(&q("*", false, Some(2))).len(), 2);
        assert_eq!(inputs(&h.query(&q("let ? = 6;", false, None))), ["let x = 6;"]);
    }

    #[test]
    fn clients_may_leave_fields_out() {
        let q: Query =
            serde_json::from_value(serde_json::json!({"hist_access_type": "search", "pattern": "a*"})).unwrap();
        assert_eq!(q, Query::Search { pattern: "a*".into(), unique: false, n: None, output: false });
        let q: Query = serde_json::from_value(serde_json::json!({"hist_access_type": "range", "raw": true})).unwrap();
        assert!(matches!(q, Query::Range { session: None, start: 0, stop: None, output: false }));
    }
}
