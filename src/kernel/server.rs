//! The kernel's sockets (messaging spec 5.4): shell and control (ROUTER), iopub (PUB, see
//! [`super::iopub`]), stdin (ROUTER) and heartbeat (REP, see [`super::heartbeat`]).
//!
//! What any peer may send is bounded: every socket refuses a message over
//! [`Limits::max_message_bytes`] before allocating it, and drops that peer. What a client
//! that holds the key sends is answered: every validly signed `*_request` gets a reply of its
//! type, an error where it cannot be served, between `busy` and `idle` on iopub; a replayed
//! signature is refused (see [`wire::Signer`]).

use super::execute::{Executor, Outbox};
use super::history::{History, Query};
use super::interrupter::Interrupter;
use super::iopub::Iopub;
use super::processes;
use super::repl::{InputReader, Repl, ReplConfig, Sink};
use super::rust_analysis::Unready;
use super::wire::{self, Author, Inbound, Signer};
use anyhow::{Context, Result};
use jupyter_protocol::{
    CommClose, CommInfoReply, CompleteReply, ConnectionInfo, ExecuteRequest, Header, HistoryReply, InputRequest,
    InspectReply, InterruptReply, JupyterMessage, JupyterMessageContent, KernelInfoReply, LanguageInfo, Media,
    MediaType, ReplyError, ReplyStatus, ShutdownReply, UnknownMessage,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;
use zeromq::{PubSocket, RouterSocket, Socket, SocketOptions, SocketRecv, SocketSend, ZmqMessage};

/// What the kernel lets any peer do to it.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest message taken in, on any socket, signed or not.
    pub max_message_bytes: usize,
}

/// Environment variable that sets [`Limits::max_message_bytes`].
pub const MAX_MESSAGE_ENV: &str = "GLASSBOX_MAX_MESSAGE_BYTES";

impl Default for Limits {
    /// 16 MiB: far above any cell or completion request, far below what would hurt.
    fn default() -> Self {
        Limits { max_message_bytes: 16 << 20 }
    }
}

impl Limits {
    /// The defaults, with [`MAX_MESSAGE_ENV`] if it is set.
    pub fn from_env() -> Result<Limits> {
        let mut limits = Limits::default();
        if let Ok(text) = std::env::var(MAX_MESSAGE_ENV) {
            limits.max_message_bytes =
                text.trim().parse().ok().filter(|&n: &usize| n >= 1024).with_context(|| {
                    format!("{MAX_MESSAGE_ENV}={text:?}: expected a number of bytes, at least 1024")
                })?;
        }
        Ok(limits)
    }

    fn socket_options(&self) -> SocketOptions {
        let mut options = SocketOptions::default();
        options.max_message_size(self.max_message_bytes);
        options
    }
}

/// Runs the kernel until a shutdown request; then ends the REPL child and whatever else the
/// kernel started, so a running cell cannot hold the shutdown up.
pub async fn run(info: ConnectionInfo, limits: Limits) -> Result<()> {
    let signer = Signer::new(&info.key);
    let author = Author::new();

    let iopub_socket = PubSocket::with_options(limits.socket_options());
    let mut shell = RouterSocket::with_options(limits.socket_options());
    shell.bind(&info.shell_url()).await.context("bind shell")?;
    let mut control = RouterSocket::with_options(limits.socket_options());
    control.bind(&info.control_url()).await.context("bind control")?;
    let mut stdin = RouterSocket::with_options(limits.socket_options());
    stdin.bind(&info.stdin_url()).await.context("bind stdin")?;
    super::heartbeat::spawn(info.hb_url(), limits.socket_options()).await?;

    let iopub = Iopub::spawn(iopub_socket, &info.iopub_url(), signer.clone(), author.clone()).await?;
    let (asks, asked) = unbounded_channel();
    tokio::spawn(serve_stdin(stdin, signer.clone(), author.clone(), asked));

    // Output of the running cell is published as a child of the request being executed.
    let current: Arc<Mutex<Option<Header>>> = Arc::default();
    let sink: Sink = {
        let (iopub, current) = (iopub.clone(), current.clone());
        Arc::new(move |content| {
            let parent = current.lock().expect("current request").clone();
            iopub.publish(parent.as_ref(), content);
        })
    };
    let interrupter = Interrupter::default();
    let config = ReplConfig { glassbox_src: super::env::glassbox_src(), cache_dir: super::env::cache_dir() };
    let repl = Repl::spawn(config, sink, interrupter.clone());
    let history = History::open_in_cache(&super::env::cache_dir());

    let control_task = {
        let control = Control { socket: control, signer: signer.clone(), iopub: iopub.clone(), author: author.clone() };
        let interrupter = interrupter.clone();
        tokio::spawn(control.serve(interrupter))
    };
    let shell = Shell {
        socket: shell,
        signer,
        iopub,
        author,
        repl,
        current,
        asks,
        history,
        executor: Executor::new(),
        interrupter,
    };
    let shell_task = tokio::spawn(shell.serve());
    tokio::select! {
        r = control_task => r??,
        r = shell_task => r??,
    }
    // Let the last reply and `idle` leave before the process ends.
    tokio::time::sleep(Duration::from_millis(100)).await;
    processes::kill_descendants();
    Ok(())
}

/// A socket gave an error instead of a message: a peer broke the framing or went over the
/// size limit, and was dropped. Say so in the log, and keep serving the others.
pub(super) async fn refused(channel: &str, error: &zeromq::ZmqError) {
    super::log(format_args!("dropped a peer on {channel}: {error}"));
    // A socket that fails at once again must not spin.
    tokio::time::sleep(Duration::from_millis(5)).await;
}

/// The next message that is signed and new. Anything else is logged and skipped.
async fn receive(socket: &mut RouterSocket, signer: &Signer, channel: &str) -> Inbound {
    loop {
        match socket.recv().await {
            Ok(frames) => match wire::decode(frames.into_vec(), signer) {
                Ok(inbound) => return inbound,
                // A bad message is the sender's problem: say so in the log and keep serving.
                Err(e) => super::log(format_args!("refused a message on {channel}: {e}")),
            },
            Err(e) => refused(channel, &e).await,
        }
    }
}

async fn send(socket: &mut RouterSocket, signer: &Signer, msg: &JupyterMessage) {
    if let Ok(zmq) = ZmqMessage::try_from(wire::encode(msg, signer)) {
        if let Err(e) = socket.send(zmq).await {
            super::log(format_args!("could not send {}: {e}", msg.header.msg_type));
        }
    }
}

/// What an `*_request` that cannot be served is answered with: a reply of its type, with
/// status `error`.
fn error_reply(msg_type: &str, ename: &str, evalue: String) -> JupyterMessageContent {
    let request = UnknownMessage { msg_type: msg_type.to_owned(), content: serde_json::Value::Null };
    request.reply(serde_json::json!({
        "status": "error", "ename": ename, "evalue": evalue, "traceback": [evalue],
    }))
}

fn is_request(msg: &JupyterMessage) -> bool {
    msg.header.msg_type.ends_with("_request")
}

/// Whether an `input_reply` answers the open request `asked`. jupyter_client, and with it
/// jupyter_console, sends replies with an empty parent header, so one of those answers
/// whatever request is open; one that names another request does not.
fn answers(reply: &JupyterMessage, asked: &str) -> bool {
    reply.parent_header.as_ref().is_none_or(|p| p.msg_id.is_empty() || p.msg_id == asked)
}

/// A cell's request for a line of input, answered through the stdin channel.
struct InputAsk {
    parent: JupyterMessage,
    prompt: String,
    password: bool,
    answer: oneshot::Sender<String>,
}

/// Sends `input_request` to the client that sent the execute request (the stdin socket
/// shares the shell socket's identity) and waits for the `input_reply` to that request (see
/// [`answers`]). A reply to another request, or one that comes while nothing is asked, is
/// dropped; when the cell stops waiting (it was interrupted), so does this.
async fn serve_stdin(mut socket: RouterSocket, signer: Signer, author: Author, mut asks: UnboundedReceiver<InputAsk>) {
    loop {
        let mut ask = tokio::select! {
            ask = asks.recv() => match ask {
                Some(ask) => ask,
                None => return,
            },
            unasked = receive(&mut socket, &signer, "stdin") => {
                super::log(format_args!("dropped an unasked {} on stdin", unasked.msg.header.msg_type));
                continue;
            }
        };
        let request = author.child(Some(&ask.parent), InputRequest { prompt: ask.prompt, password: ask.password });
        let asked = request.header.msg_id.clone();
        send(&mut socket, &signer, &request).await;
        let value = loop {
            tokio::select! {
                _ = ask.answer.closed() => break None,
                inbound = receive(&mut socket, &signer, "stdin") => match inbound.msg.content {
                    JupyterMessageContent::InputReply(reply) if answers(&inbound.msg, &asked) => break Some(reply.value),
                    _ => super::log(format_args!("dropped a {} on stdin that answers no open input_request", inbound.msg.header.msg_type)),
                },
            }
        };
        if let Some(value) = value {
            let _ = ask.answer.send(value);
        }
    }
}

/// Collects what the execute state machine produces: iopub at once, the reply for later.
struct ShellOutbox<'a> {
    iopub: &'a Iopub,
    request: &'a JupyterMessage,
    reply: Option<JupyterMessageContent>,
}

impl Outbox for ShellOutbox<'_> {
    fn iopub(&mut self, content: JupyterMessageContent) {
        self.iopub.publish(Some(&self.request.header), content);
    }
    fn reply(&mut self, content: JupyterMessageContent) {
        self.reply = Some(content);
    }
}

/// The shell channel: one request at a time, each bracketed by `busy`/`idle`.
struct Shell {
    socket: RouterSocket,
    signer: Signer,
    iopub: Iopub,
    author: Author,
    repl: Repl,
    current: Arc<Mutex<Option<Header>>>,
    asks: UnboundedSender<InputAsk>,
    history: History,
    executor: Executor,
    interrupter: Interrupter,
}

impl Shell {
    async fn serve(mut self) -> Result<()> {
        loop {
            let Inbound { msg: request, problem } = receive(&mut self.socket, &self.signer, "shell").await;
            self.iopub.status(&request, true);
            let reply = match problem {
                Some(problem) => is_request(&request).then(|| self.malformed(&request, problem)),
                None => tokio::task::block_in_place(|| self.handle(&request)),
            };
            if let Some(content) = reply {
                send(&mut self.socket, &self.signer, &self.author.child(Some(&request), content)).await;
            }
            self.iopub.status(&request, false);
            if matches!(request.content, JupyterMessageContent::ShutdownRequest(_)) {
                return Ok(());
            }
        }
    }

    /// The error reply to a request that could not be read; an `execute_reply` also carries
    /// the execution count, which clients expect in every one.
    fn malformed(&self, request: &JupyterMessage, problem: String) -> JupyterMessageContent {
        let mut reply = error_reply(&request.header.msg_type, "MalformedRequest", problem);
        if let JupyterMessageContent::UnknownMessage(m) = &mut reply {
            if m.msg_type == "execute_reply" {
                m.content["execution_count"] = self.executor.count().into();
            }
        }
        reply
    }

    /// Answers one request; blocking (the REPL runs cells synchronously).
    fn handle(&mut self, request: &JupyterMessage) -> Option<JupyterMessageContent> {
        use JupyterMessageContent as C;
        match &request.content {
            C::ExecuteRequest(req) => Some(self.execute(request, req)),
            C::CompleteRequest(req) => {
                let answer = self.repl.complete(&req.code, req.cursor_pos);
                let (cursor_start, cursor_end, matches) = answer.value;
                let metadata = analysis_metadata(answer.unready);
                Some(CompleteReply { matches, cursor_start, cursor_end, metadata, ..Default::default() }.into())
            }
            C::InspectRequest(req) => {
                let answer = self.repl.inspect(&req.code, req.cursor_pos);
                let metadata = analysis_metadata(answer.unready);
                Some(match answer.value {
                    Some((plain, html)) => {
                        let data =
                            serde_json::from_value(serde_json::json!({ "text/plain": plain, "text/html": html }))
                                .expect("text media");
                        InspectReply { found: true, data, metadata, ..Default::default() }.into()
                    }
                    None => InspectReply { metadata, ..Default::default() }.into(),
                })
            }
            C::HistoryRequest(req) => Some(self.history_reply(serde_json::to_value(req).unwrap_or_default())),
            C::UnknownMessage(msg) if msg.msg_type == "history_request" => {
                Some(self.history_reply(msg.content.clone()))
            }
            C::CommOpen(open) => {
                // No comm targets exist: the spec says to close the comm at once.
                let close = CommClose { comm_id: open.comm_id.clone(), data: Default::default() };
                self.iopub.publish(Some(&request.header), close);
                None
            }
            _ => common_reply(request, "shell"),
        }
    }

    fn execute(&mut self, request: &JupyterMessage, req: &ExecuteRequest) -> JupyterMessageContent {
        *self.current.lock().expect("current request") = Some(request.header.clone());
        let input: InputReader = if req.allow_stdin {
            let (asks, parent, interrupter) = (self.asks.clone(), request.clone(), self.interrupter.clone());
            Arc::new(move |prompt: &str, password: bool| {
                let (answer, answered) = oneshot::channel();
                let ask = InputAsk { parent: parent.clone(), prompt: prompt.to_owned(), password, answer };
                asks.send(ask).ok()?;
                wait_for_input(answered, &interrupter)
            })
        } else {
            Arc::new(|_: &str, _: bool| None)
        };
        let mut outbox = ShellOutbox { iopub: &self.iopub, request, reply: None };
        let mut shown = String::new();
        let repl = &self.repl;
        self.executor.execute(
            req,
            |code| {
                let result = repl.execute(code, input);
                if let Ok(value) = &result {
                    shown = plain_text(value.result.as_ref());
                }
                result
            },
            &mut outbox,
        );
        if req.store_history && !req.silent {
            self.history.record(self.executor.count(), &req.code, &shown);
        }
        outbox.reply.expect("the executor always replies")
    }

    fn history_reply(&self, query: serde_json::Value) -> JupyterMessageContent {
        match serde_json::from_value::<Query>(query) {
            Ok(q) => HistoryReply::new(self.history.query(&q)).into(),
            Err(e) => HistoryReply {
                status: ReplyStatus::Error,
                error: Some(Box::new(ReplyError {
                    ename: "MalformedRequest".into(),
                    evalue: format!("malformed history_request: {e}"),
                    traceback: Vec::new(),
                })),
                ..Default::default()
            }
            .into(),
        }
    }
}

/// How often a cell waiting for input looks for an interrupt.
const INPUT_POLL: Duration = Duration::from_millis(20);

/// The line the front end answers with; on an interrupt, [`crate::runtime::INPUT_INTERRUPTED`]
/// at once (dropping `answered` tells the stdin task to stop waiting); `None` when the stdin
/// task is gone.
/// Reply metadata that says why Rust completion or inspection holds nothing from
/// rust-analyzer: a client (or a test) can ask again.
fn analysis_metadata(unready: Option<Unready>) -> serde_json::Map<String, serde_json::Value> {
    let mut metadata = serde_json::Map::new();
    if let Some(why) = unready {
        metadata.insert("glassbox".into(), serde_json::json!({ "rust_analyzer": why.as_str() }));
    }
    metadata
}

fn wait_for_input(mut answered: oneshot::Receiver<String>, interrupter: &Interrupter) -> Option<String> {
    loop {
        match answered.try_recv() {
            Ok(line) => return Some(line),
            Err(oneshot::error::TryRecvError::Closed) => return None,
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        if interrupter.requested() {
            return Some(crate::runtime::INPUT_INTERRUPTED.to_owned());
        }
        std::thread::sleep(INPUT_POLL);
    }
}

fn plain_text(media: Option<&Media>) -> String {
    media
        .and_then(|m| {
            m.content.iter().find_map(|t| match t {
                MediaType::Plain(s) => Some(s.clone()),
                _ => None,
            })
        })
        .unwrap_or_default()
}

/// The control channel: interrupts and shutdown, never behind a running cell.
struct Control {
    socket: RouterSocket,
    signer: Signer,
    iopub: Iopub,
    author: Author,
}

impl Control {
    async fn serve(mut self, interrupter: Interrupter) -> Result<()> {
        loop {
            let Inbound { msg: request, problem } = receive(&mut self.socket, &self.signer, "control").await;
            self.iopub.status(&request, true);
            let reply = match (problem, &request.content) {
                (Some(problem), _) => {
                    is_request(&request).then(|| error_reply(&request.header.msg_type, "MalformedRequest", problem))
                }
                (None, JupyterMessageContent::InterruptRequest(_)) => {
                    interrupter.interrupt();
                    Some(InterruptReply::new().into())
                }
                (None, _) => common_reply(&request, "control"),
            };
            if let Some(content) = reply {
                send(&mut self.socket, &self.signer, &self.author.child(Some(&request), content)).await;
            }
            self.iopub.status(&request, false);
            if matches!(request.content, JupyterMessageContent::ShutdownRequest(_)) {
                return Ok(());
            }
        }
    }
}

/// Replies that need no REPL; an error reply for any other request; `None` for messages
/// that are not requests.
fn common_reply(request: &JupyterMessage, channel: &str) -> Option<JupyterMessageContent> {
    use JupyterMessageContent as C;
    Some(match &request.content {
        C::KernelInfoRequest(_) => kernel_info_reply(),
        C::ShutdownRequest(req) => ShutdownReply { restart: req.restart, ..Default::default() }.into(),
        C::IsCompleteRequest(req) => super::is_complete::is_complete(&req.code).into(),
        C::CommInfoRequest(_) => CommInfoReply::default().into(),
        C::UnknownMessage(msg) if is_request(request) => match wire::content_problem(msg) {
            Some(problem) => error_reply(&msg.msg_type, "MalformedRequest", problem),
            None => unserved(&msg.msg_type, channel),
        },
        C::DebugRequest(_) => error_reply(
            "debug_request",
            "UnsupportedRequest",
            "glassbox has no debugger (kernel_info_reply says debugger: false)".into(),
        ),
        _ if is_request(request) => unserved(&request.header.msg_type, channel),
        _ => return None,
    })
}

fn unserved(msg_type: &str, channel: &str) -> JupyterMessageContent {
    error_reply(msg_type, "UnknownRequest", format!("glassbox does not handle {msg_type} on the {channel} channel"))
}

/// What `kernel_info_reply` lists in `supported_features`: JEP 65's welcome on IOPub.
pub const SUPPORTED_FEATURES: &[&str] = &["iopub_welcome"];

/// [`kernel_info`] with `supported_features`, which the protocol crate's type lacks.
fn kernel_info_reply() -> JupyterMessageContent {
    let mut content = serde_json::to_value(kernel_info()).expect("kernel info serialises");
    content["supported_features"] = serde_json::json!(SUPPORTED_FEATURES);
    JupyterMessageContent::UnknownMessage(UnknownMessage { msg_type: "kernel_info_reply".into(), content })
}

/// `kernel_info_reply`: answered at once, before the REPL has finished starting.
pub fn kernel_info() -> KernelInfoReply {
    KernelInfoReply {
        status: ReplyStatus::Ok,
        protocol_version: wire::PROTOCOL_VERSION.into(),
        implementation: "glassbox".into(),
        implementation_version: crate::VERSION.into(),
        language_info: LanguageInfo {
            name: "rust".into(),
            version: rustc_version(),
            mimetype: Some("text/rust".into()),
            file_extension: Some(".rs".into()),
            pygments_lexer: Some("rust".into()),
            codemirror_mode: Some(jupyter_protocol::CodeMirrorMode::Simple("rust".into())),
            nbconvert_exporter: None,
        },
        banner: format!(
            "glassbox {} — Rust cells (evcxr) and :commands for looking inside vision networks",
            crate::VERSION
        ),
        help_links: Vec::new(),
        debugger: false,
        error: None,
    }
}

fn rustc_version() -> String {
    option_env!("GLASSBOX_RUSTC_VERSION").unwrap_or("stable").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_info_names_rust_and_protocol_5_4() {
        let reply = kernel_info_reply();
        assert_eq!(reply.message_type(), "kernel_info_reply");
        let info = serde_json::to_value(reply).unwrap();
        assert_eq!(info["protocol_version"], "5.4");
        assert_eq!(info["supported_features"], serde_json::json!(["iopub_welcome"]));
        assert_eq!(info["language_info"]["name"], "rust");
        assert_eq!(info["language_info"]["file_extension"], ".rs");
        assert_eq!(info["implementation"], "glassbox");
    }

    fn message(msg_type: &str, content: serde_json::Value) -> JupyterMessage {
        let mut msg = JupyterMessage::new(
            JupyterMessageContent::from_type_and_content(msg_type, content.clone()).unwrap_or_else(|_| {
                JupyterMessageContent::UnknownMessage(UnknownMessage { msg_type: msg_type.into(), content })
            }),
            None,
        );
        msg.header.msg_type = msg_type.into();
        msg
    }

    fn reply_of(msg: &JupyterMessage, channel: &str) -> serde_json::Value {
        let reply = common_reply(msg, channel).expect("a reply");
        assert_eq!(reply.message_type(), msg.header.msg_type.replace("_request", "_reply"));
        serde_json::to_value(reply).unwrap()
    }

    #[test]
    fn every_request_gets_a_reply_of_its_type_and_other_messages_none() {
        let reply = reply_of(&message("frobnicate_request", serde_json::json!({})), "shell");
        assert_eq!(reply["status"], "error");
        assert_eq!(reply["ename"], "UnknownRequest");
        let reply = reply_of(&message("complete_request", serde_json::json!({ "code": 3 })), "shell");
        assert_eq!(reply["ename"], "MalformedRequest");
        assert!(reply["evalue"].as_str().unwrap().contains("malformed complete_request"), "{reply}");
        let debug =
            message("debug_request", serde_json::json!({ "seq": 1, "type": "request", "command": "initialize" }));
        assert!(matches!(debug.content, JupyterMessageContent::DebugRequest(_)));
        assert_eq!(reply_of(&debug, "control")["ename"], "UnsupportedRequest");
        // A request served on the shell channel only is answered on control too.
        let execute = JupyterMessage::new(ExecuteRequest::new("1".into()), None);
        assert!(reply_of(&execute, "control")["evalue"].as_str().unwrap().contains("control channel"));
        let status = message("status", serde_json::json!({ "execution_state": "idle" }));
        assert!(common_reply(&status, "shell").is_none());
    }
}
