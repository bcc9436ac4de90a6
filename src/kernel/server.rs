//! The kernel's sockets (messaging spec 5.3): shell and control (ROUTER), iopub (PUB), stdin
//! (ROUTER) and heartbeat (REP), with every request bracketed by `busy`/`idle` on iopub.

use super::execute::{Executor, Outbox};
use super::history::{History, Query};
use super::interrupt::Interrupter;
use super::repl::{InputReader, Repl, ReplConfig, Sink};
use super::wire::{self, Signer};
use anyhow::{Context, Result};
use bytes::Bytes;
use jupyter_protocol::{
    CommClose, CommInfoReply, CompleteReply, ConnectionInfo, ExecuteRequest, HistoryReply, InputRequest, InspectReply,
    InterruptReply, JupyterMessage, JupyterMessageContent, KernelInfoReply, LanguageInfo, Media, MediaType, ReplyError,
    ReplyStatus, ShutdownReply, Status,
};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use zeromq::{PubSocket, RepSocket, RouterSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

/// Builds the kernel's messages: its own session id and user name, a request's identities.
#[derive(Clone)]
struct Messages {
    session: String,
}

impl Messages {
    fn child(&self, parent: Option<&JupyterMessage>, content: impl Into<JupyterMessageContent>) -> JupyterMessage {
        let mut msg = JupyterMessage::new(content, parent);
        msg.header.session.clone_from(&self.session);
        msg.header.username = "glassbox".into();
        msg
    }
}

/// Everything published on iopub goes through this one ordered queue.
#[derive(Clone)]
struct Iopub {
    tx: UnboundedSender<JupyterMessage>,
    messages: Messages,
}

impl Iopub {
    fn publish(&self, parent: Option<&JupyterMessage>, content: impl Into<JupyterMessageContent>) {
        let mut msg = self.messages.child(parent, content);
        // On PUB the first frame is a topic; Jupyter's convention is kernel.<id>.<msg_type>.
        let topic = format!("kernel.{}.{}", self.messages.session, msg.header.msg_type);
        msg.zmq_identities = vec![Bytes::from(topic)];
        let _ = self.tx.send(msg);
    }

    fn status(&self, parent: &JupyterMessage, busy: bool) {
        self.publish(Some(parent), if busy { Status::busy() } else { Status::idle() });
    }
}

/// Runs the kernel until a shutdown request.
pub async fn run(info: ConnectionInfo) -> Result<()> {
    let signer = Signer::new(&info.key);
    let messages = Messages { session: uuid::Uuid::new_v4().to_string() };

    let mut iopub_socket = PubSocket::new();
    iopub_socket.bind(&info.iopub_url()).await.context("bind iopub")?;
    let mut shell = RouterSocket::new();
    shell.bind(&info.shell_url()).await.context("bind shell")?;
    let mut control = RouterSocket::new();
    control.bind(&info.control_url()).await.context("bind control")?;
    let mut stdin = RouterSocket::new();
    stdin.bind(&info.stdin_url()).await.context("bind stdin")?;
    let mut heartbeat = RepSocket::new();
    heartbeat.bind(&info.hb_url()).await.context("bind heartbeat")?;

    let (tx, rx) = unbounded_channel();
    let iopub = Iopub { tx, messages: messages.clone() };
    tokio::spawn(publish_loop(iopub_socket, rx, signer.clone()));
    tokio::spawn(async move {
        while let Ok(ping) = heartbeat.recv().await {
            if heartbeat.send(ping).await.is_err() {
                break;
            }
        }
    });
    let (asks, asked) = unbounded_channel();
    tokio::spawn(serve_stdin(stdin, signer.clone(), messages.clone(), asked));

    // Output of the running cell is published as a child of the request being executed.
    let current: Arc<Mutex<Option<JupyterMessage>>> = Arc::default();
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
    let history = History::open(super::env::cache_dir().join("history.jsonl"));

    let control_task = {
        let (signer, iopub, messages) = (signer.clone(), iopub.clone(), messages.clone());
        tokio::spawn(async move { serve_control(control, signer, iopub, messages, interrupter).await })
    };
    let shell =
        Shell { socket: shell, signer, iopub, messages, repl, current, asks, history, executor: Executor::new() };
    let shell_task = tokio::spawn(shell.serve());
    tokio::select! {
        r = control_task => r??,
        r = shell_task => r??,
    }
    // Let the last reply and `idle` leave before the process ends.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    Ok(())
}

async fn publish_loop(mut socket: PubSocket, mut rx: UnboundedReceiver<JupyterMessage>, signer: Signer) {
    while let Some(msg) = rx.recv().await {
        let frames = wire::encode(&msg, &signer);
        if let Ok(zmq) = ZmqMessage::try_from(frames) {
            let _ = socket.send(zmq).await;
        }
    }
}

async fn receive(socket: &mut RouterSocket, signer: &Signer, channel: &str) -> Result<JupyterMessage> {
    loop {
        let frames = socket.recv().await.with_context(|| format!("{channel} socket closed"))?;
        match wire::decode(frames.into_vec(), signer) {
            Ok(msg) => return Ok(msg),
            // A bad message is the sender's problem: say so in the log and keep serving.
            Err(e) => eprintln!("glassbox: refused a message on {channel}: {e}"),
        }
    }
}

async fn send(socket: &mut RouterSocket, signer: &Signer, msg: &JupyterMessage) {
    if let Ok(zmq) = ZmqMessage::try_from(wire::encode(msg, signer)) {
        if let Err(e) = socket.send(zmq).await {
            eprintln!("glassbox: could not send {}: {e}", msg.header.msg_type);
        }
    }
}

/// A cell's request for a line of input, answered through the stdin channel.
struct InputAsk {
    parent: JupyterMessage,
    prompt: String,
    password: bool,
    answer: std::sync::mpsc::Sender<Option<String>>,
}

/// Sends `input_request` to the client that sent the execute request (the stdin socket
/// shares the shell socket's identity) and waits for its `input_reply`.
async fn serve_stdin(
    mut socket: RouterSocket,
    signer: Signer,
    messages: Messages,
    mut asks: UnboundedReceiver<InputAsk>,
) {
    while let Some(ask) = asks.recv().await {
        let request = InputRequest { prompt: ask.prompt, password: ask.password };
        send(&mut socket, &signer, &messages.child(Some(&ask.parent), request)).await;
        let value = loop {
            match receive(&mut socket, &signer, "stdin").await {
                Ok(msg) => match msg.content {
                    JupyterMessageContent::InputReply(reply) => break Some(reply.value),
                    _ => continue,
                },
                Err(_) => break None,
            }
        };
        let _ = ask.answer.send(value);
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
        self.iopub.publish(Some(self.request), content);
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
    messages: Messages,
    repl: Repl,
    current: Arc<Mutex<Option<JupyterMessage>>>,
    asks: UnboundedSender<InputAsk>,
    history: History,
    executor: Executor,
}

impl Shell {
    async fn serve(mut self) -> Result<()> {
        loop {
            let request = receive(&mut self.socket, &self.signer, "shell").await?;
            self.iopub.status(&request, true);
            let reply = tokio::task::block_in_place(|| self.handle(&request));
            if let Some(content) = reply {
                send(&mut self.socket, &self.signer, &self.messages.child(Some(&request), content)).await;
            }
            self.iopub.status(&request, false);
            if matches!(request.content, JupyterMessageContent::ShutdownRequest(_)) {
                return Ok(());
            }
        }
    }

    /// Answers one request; blocking (the REPL runs cells synchronously).
    fn handle(&mut self, request: &JupyterMessage) -> Option<JupyterMessageContent> {
        use JupyterMessageContent as C;
        match &request.content {
            C::ExecuteRequest(req) => Some(self.execute(request, req)),
            C::CompleteRequest(req) => {
                let (cursor_start, cursor_end, matches) = self.repl.complete(&req.code, req.cursor_pos);
                Some(CompleteReply { matches, cursor_start, cursor_end, ..Default::default() }.into())
            }
            C::InspectRequest(req) => Some(match self.repl.inspect(&req.code, req.cursor_pos) {
                Some((plain, html)) => {
                    let data = serde_json::from_value(serde_json::json!({ "text/plain": plain, "text/html": html }))
                        .expect("text media");
                    InspectReply { found: true, data, ..Default::default() }.into()
                }
                None => InspectReply::default().into(),
            }),
            C::HistoryRequest(req) => Some(self.history_reply(serde_json::to_value(req).unwrap_or_default())),
            C::UnknownMessage(msg) if msg.msg_type == "history_request" => {
                Some(self.history_reply(msg.content.clone()))
            }
            C::CommOpen(open) => {
                // No comm targets exist: the spec says to close the comm at once.
                let close = CommClose { comm_id: open.comm_id.clone(), data: Default::default() };
                self.iopub.publish(Some(request), close);
                None
            }
            other => common_reply(other),
        }
    }

    fn execute(&mut self, request: &JupyterMessage, req: &ExecuteRequest) -> JupyterMessageContent {
        *self.current.lock().expect("current request") = Some(request.clone());
        let input: InputReader = if req.allow_stdin {
            let (asks, parent) = (self.asks.clone(), request.clone());
            Arc::new(move |prompt: &str, password: bool| {
                let (answer, answered) = std::sync::mpsc::channel();
                let ask = InputAsk { parent: parent.clone(), prompt: prompt.to_owned(), password, answer };
                asks.send(ask).ok()?;
                answered.recv().ok().flatten()
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

async fn serve_control(
    mut socket: RouterSocket,
    signer: Signer,
    iopub: Iopub,
    messages: Messages,
    interrupter: Interrupter,
) -> Result<()> {
    loop {
        let request = receive(&mut socket, &signer, "control").await?;
        iopub.status(&request, true);
        let reply = match &request.content {
            JupyterMessageContent::InterruptRequest(_) => {
                interrupter.interrupt();
                Some(InterruptReply::new().into())
            }
            other => common_reply(other),
        };
        if let Some(content) = reply {
            send(&mut socket, &signer, &messages.child(Some(&request), content)).await;
        }
        iopub.status(&request, false);
        if matches!(request.content, JupyterMessageContent::ShutdownRequest(_)) {
            return Ok(());
        }
    }
}

/// Replies that need no REPL; `None` for messages that get no reply.
fn common_reply(request: &JupyterMessageContent) -> Option<JupyterMessageContent> {
    use JupyterMessageContent as C;
    Some(match request {
        C::KernelInfoRequest(_) => C::KernelInfoReply(Box::new(kernel_info())),
        C::ShutdownRequest(req) => ShutdownReply { restart: req.restart, ..Default::default() }.into(),
        C::IsCompleteRequest(req) => super::complete::is_complete(&req.code).into(),
        C::CommInfoRequest(_) => CommInfoReply::default().into(),
        C::UnknownMessage(msg) if msg.msg_type.ends_with("_request") => {
            let (ename, evalue) = match wire::content_problem(msg) {
                Some(problem) => ("MalformedRequest", problem),
                None => ("UnknownRequest", format!("glassbox does not handle {}", msg.msg_type)),
            };
            msg.reply(serde_json::json!({
                "status": "error", "ename": ename, "evalue": evalue, "traceback": [evalue],
            }))
        }
        _ => return None,
    })
}

/// `kernel_info_reply`: answered at once, before the REPL has finished starting.
pub fn kernel_info() -> KernelInfoReply {
    KernelInfoReply {
        status: ReplyStatus::Ok,
        protocol_version: "5.3".into(),
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
    fn kernel_info_names_rust_and_protocol_5_3() {
        let info = serde_json::to_value(kernel_info()).unwrap();
        assert_eq!(info["protocol_version"], "5.3");
        assert_eq!(info["language_info"]["name"], "rust");
        assert_eq!(info["language_info"]["file_extension"], ".rs");
        assert_eq!(info["implementation"], "glassbox");
    }

    #[test]
    fn unknown_requests_get_an_error_reply_and_other_messages_none() {
        let unknown =
            JupyterMessageContent::from_type_and_content("frobnicate_request", serde_json::json!({})).unwrap();
        let reply = serde_json::to_value(common_reply(&unknown).unwrap()).unwrap();
        assert_eq!(reply["status"], "error");
        let malformed = JupyterMessageContent::UnknownMessage(jupyter_protocol::UnknownMessage {
            msg_type: "complete_request".into(),
            content: serde_json::json!({ "code": 3 }),
        });
        let reply = serde_json::to_value(common_reply(&malformed).unwrap()).unwrap();
        assert_eq!(reply["ename"], "MalformedRequest");
        assert!(reply["evalue"].as_str().unwrap().contains("malformed complete_request"), "{reply}");
        let status = JupyterMessageContent::Status(Status::idle());
        assert!(common_reply(&status).is_none());
    }
}
