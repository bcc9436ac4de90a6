//! The execute state machine (messaging spec 5.3, "Execute"): `execute_input`, the cell's
//! own outputs, then either its value as `execute_result` or exactly one `error`, then the
//! `execute_reply`. The `busy`/`idle` pair around it belongs to the dispatcher, which
//! brackets every request that way.

use jupyter_protocol::{
    ErrorOutput, ExecuteInput, ExecuteReply, ExecuteRequest, ExecuteResult, ExecutionCount, JupyterMessageContent,
    Media, Payload, ReplyError, ReplyStatus, Transient,
};

/// A failed cell, as the client shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct CellError {
    /// The kind of failure: `CompileError`, `Panic`, `ReplRestarted`, `UsageError`, ...
    pub ename: String,
    /// One line saying what went wrong.
    pub evalue: String,
    /// The lines a front end prints, naming the cell line where one is known.
    pub traceback: Vec<String>,
}

impl CellError {
    /// An error whose traceback is its one-line message.
    pub fn new(ename: &str, evalue: impl Into<String>) -> Self {
        let evalue = evalue.into();
        CellError { ename: ename.into(), traceback: vec![evalue.clone()], evalue }
    }
}

/// What a cell that ran gives: the value of its last expression, and text for the pager
/// (`?COMMAND`), each if it has one; `ask_exit` when the cell asked the front end to end
/// its session (`exit`, `quit`), which a console does and a notebook ignores.
#[derive(Debug, Clone, Default)]
pub struct CellValue {
    pub result: Option<Media>,
    pub page: Option<String>,
    pub ask_exit: bool,
}

/// What running a cell gives: its value, or the failure.
pub type CellResult = Result<CellValue, CellError>;

/// Where the state machine sends what it produces.
pub trait Outbox {
    /// A broadcast on iopub, child of the request.
    fn iopub(&mut self, content: JupyterMessageContent);
    /// The reply on the request's own socket.
    fn reply(&mut self, content: JupyterMessageContent);
}

/// Counts executions and runs requests through their message sequence.
#[derive(Debug, Default)]
pub struct Executor {
    count: usize,
}

impl Executor {
    pub fn new() -> Self {
        Self::default()
    }

    /// The count of the last execution that was stored in history (0 before the first).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Runs one request. `run` executes the code and returns once every output the cell
    /// wrote has been handed to the outbox, so nothing of the cell can follow the reply.
    pub fn execute(
        &mut self,
        request: &ExecuteRequest,
        run: impl FnOnce(&str) -> CellResult,
        out: &mut impl Outbox,
    ) -> ReplyStatus {
        // A silent request is run as quietly as possible: nothing broadcast, no history.
        let broadcast = !request.silent;
        if request.store_history && !request.silent {
            self.count += 1;
        }
        let count = ExecutionCount::new(self.count);
        if broadcast {
            out.iopub(JupyterMessageContent::ExecuteInput(ExecuteInput {
                code: request.code.clone(),
                execution_count: count,
            }));
        }
        let reply = match run(&request.code) {
            Ok(value) => {
                if let Some(data) = value.result.filter(|_| broadcast) {
                    out.iopub(JupyterMessageContent::ExecuteResult(ExecuteResult {
                        // An object, never null: the message schema says so.
                        transient: Some(Transient::default()),
                        ..ExecuteResult::new(count, data)
                    }));
                }
                ExecuteReply {
                    status: ReplyStatus::Ok,
                    execution_count: count,
                    // The spec (and the conformance suite) want an object here, never null.
                    user_expressions: Some(Default::default()),
                    payload: value
                        .page
                        .map(page)
                        .into_iter()
                        .chain(value.ask_exit.then_some(Payload::AskExit { keepkernel: false }))
                        .collect(),
                    ..Default::default()
                }
            }
            Err(e) => {
                if broadcast {
                    out.iopub(JupyterMessageContent::ErrorOutput(ErrorOutput {
                        ename: e.ename.clone(),
                        evalue: e.evalue.clone(),
                        traceback: e.traceback.clone(),
                    }));
                }
                ExecuteReply {
                    status: ReplyStatus::Error,
                    execution_count: count,
                    error: Some(Box::new(ReplyError { ename: e.ename, evalue: e.evalue, traceback: e.traceback })),
                    ..Default::default()
                }
            }
        };
        let status = reply.status.clone();
        out.reply(JupyterMessageContent::ExecuteReply(reply));
        status
    }
}

fn page(text: String) -> Payload {
    let data = serde_json::from_value(serde_json::json!({ "text/plain": text })).expect("text media");
    Payload::Page { data, start: 0 }
}

/// A display bundle from evcxr's `content_by_mime_type`, where every value is text (JSON
/// types arrive serialised and are parsed back).
pub fn media_from_mime_map<'a>(map: impl IntoIterator<Item = (&'a String, &'a String)>) -> Option<Media> {
    let object: serde_json::Map<String, serde_json::Value> = map
        .into_iter()
        .map(|(k, v)| {
            let value = match k.ends_with("json") {
                true => serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.clone())),
                false => serde_json::Value::String(v.clone()),
            };
            (k.clone(), value)
        })
        .collect();
    if object.is_empty() {
        return None;
    }
    serde_json::from_value(serde_json::Value::Object(object)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        log: Vec<(&'static str, serde_json::Value)>,
    }

    impl Outbox for Recorder {
        fn iopub(&mut self, content: JupyterMessageContent) {
            let kind = content.message_type().to_owned();
            self.log.push((leak(kind), serde_json::to_value(&content).unwrap()));
        }
        fn reply(&mut self, content: JupyterMessageContent) {
            self.log.push(("reply", serde_json::to_value(&content).unwrap()));
        }
    }

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    fn kinds(r: &Recorder) -> Vec<&'static str> {
        r.log.iter().map(|(k, _)| *k).collect()
    }

    fn value(text: &str) -> CellResult {
        let map = [("text/plain".to_string(), text.to_string())];
        Ok(CellValue { result: media_from_mime_map(map.iter().map(|(k, v)| (k, v))), ..Default::default() })
    }

    #[test]
    fn a_value_is_input_result_reply_and_counts_from_one() {
        let (mut ex, mut out) = (Executor::new(), Recorder::default());
        ex.execute(&ExecuteRequest::new("1 + 1".into()), |_| value("2"), &mut out);
        assert_eq!(kinds(&out), ["execute_input", "execute_result", "reply"]);
        assert_eq!(out.log[0].1["execution_count"], 1);
        assert_eq!(out.log[1].1["data"]["text/plain"], "2");
        assert!(out.log[1].1["transient"].is_object());
        assert_eq!(out.log[2].1["status"], "ok");
        assert_eq!(out.log[2].1["execution_count"], 1);
        assert!(out.log[2].1["user_expressions"].is_object());
        ex.execute(&ExecuteRequest::new("let x = 3;".into()), |_| Ok(CellValue::default()), &mut out);
        assert_eq!(ex.count(), 2);
    }

    #[test]
    fn a_failure_is_exactly_one_error_and_an_error_reply() {
        let (mut ex, mut out) = (Executor::new(), Recorder::default());
        let err = CellError { ename: "Panic".into(), evalue: "boom".into(), traceback: vec!["line 1".into()] };
        let status = ex.execute(&ExecuteRequest::new("panic!()".into()), |_| Err(err), &mut out);
        assert_eq!(status, ReplyStatus::Error);
        assert_eq!(kinds(&out), ["execute_input", "error", "reply"]);
        let reply = &out.log[2].1;
        assert_eq!(reply["status"], "error");
        assert_eq!(reply["ename"], "Panic");
        assert_eq!(reply["evalue"], "boom");
        assert_eq!(reply["traceback"][0], "line 1");
    }

    #[test]
    fn a_page_goes_into_the_reply_payload() {
        let (mut ex, mut out) = (Executor::new(), Recorder::default());
        let page = CellValue { page: Some(":seed N".into()), ..Default::default() };
        ex.execute(&ExecuteRequest::new("?seed".into()), |_| Ok(page), &mut out);
        let reply = &out.log.last().unwrap().1;
        assert_eq!(reply["payload"][0]["source"], "page");
        assert_eq!(reply["payload"][0]["data"]["text/plain"], ":seed N");
    }

    #[test]
    fn silent_requests_broadcast_nothing_and_do_not_count() {
        let (mut ex, mut out) = (Executor::new(), Recorder::default());
        let req = ExecuteRequest { silent: true, store_history: false, ..ExecuteRequest::new("2".into()) };
        ex.execute(&req, |_| value("2"), &mut out);
        assert_eq!(kinds(&out), ["reply"]);
        assert_eq!(ex.count(), 0);
    }

    #[test]
    fn requests_outside_history_run_without_counting() {
        let (mut ex, mut out) = (Executor::new(), Recorder::default());
        let req = ExecuteRequest { store_history: false, ..ExecuteRequest::new("2".into()) };
        ex.execute(&req, |_| Ok(CellValue::default()), &mut out);
        assert_eq!(kinds(&out), ["execute_input", "reply"]);
        assert_eq!(ex.count(), 0);
    }
}
