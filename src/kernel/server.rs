//! The kernel's sockets (messaging spec 5.3): shell and control (ROUTER), iopub (PUB), stdin
//! (ROUTER) and heartbeat (REP), with every request bracketed by `busy`/`idle` on iopub.

use super::execute::{Executor, Outbox};
use super::repl::{Repl, ReplConfig, StreamSink};
use super::wire::{self, Signer};
use anyhow::{Context, Result};
use bytes::Bytes;
use jupyter_protocol::{
    CommInfoReply, CompleteReply, ConnectionInfo, HistoryReply, InspectReply, InterruptReply,
    JupyterMessage, JupyterMessageContent, KernelInfoReply, LanguageInfo,
    ReplyStatus, ShutdownReply, Status, StreamContent,
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
    // Held open so clients can connect; input requests arrive with the kernel-quality work.
    let _stdin = stdin;

    // Output of the running cell is published as a child of the request being executed.
    let current: Arc<Mutex<Option<JupyterMessage>>> = Arc::default();
    let sink: StreamSink = {
        let (iopub, current) = (iopub.clone(), current.clone());
        Arc::new(move |name, text| {
            let parent = current.lock().expect("current request").clone();
            iopub.publish(parent.as_ref(), StreamContent { name, text });
        })
    };
    let config = ReplConfig { glassbox_src: super::env::glassbox_src(), cache_dir: super::env::cache_dir() };
    let repl = Repl::spawn(config, sink);

    let control_task = {
        let (signer, iopub, messages) = (signer.clone(), iopub.clone(), messages.clone());
        tokio::spawn(async move { serve_control(control, signer, iopub, messages).await })
    };
    let shell_task = tokio::spawn(serve_shell(shell, signer, iopub, messages, repl, current));
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

async fn serve_shell(
    mut socket: RouterSocket,
    signer: Signer,
    iopub: Iopub,
    messages: Messages,
    repl: Repl,
    current: Arc<Mutex<Option<JupyterMessage>>>,
) -> Result<()> {
    let mut executor = Executor::new();
    loop {
        let request = receive(&mut socket, &signer, "shell").await?;
        iopub.status(&request, true);
        let reply = match &request.content {
            JupyterMessageContent::ExecuteRequest(req) => {
                *current.lock().expect("current request") = Some(request.clone());
                let mut outbox = ShellOutbox { iopub: &iopub, request: &request, reply: None };
                tokio::task::block_in_place(|| executor.execute(req, |code| repl.execute(code), &mut outbox));
                outbox.reply
            }
            other => common_reply(other),
        };
        let shutdown = matches!(request.content, JupyterMessageContent::ShutdownRequest(_));
        if let Some(content) = reply {
            send(&mut socket, &signer, &messages.child(Some(&request), content)).await;
        }
        iopub.status(&request, false);
        if shutdown {
            return Ok(());
        }
    }
}

async fn serve_control(mut socket: RouterSocket, signer: Signer, iopub: Iopub, messages: Messages) -> Result<()> {
    loop {
        let request = receive(&mut socket, &signer, "control").await?;
        iopub.status(&request, true);
        let reply = match &request.content {
            JupyterMessageContent::InterruptRequest(_) => Some(InterruptReply::new().into()),
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
        C::CompleteRequest(req) => CompleteReply {
            cursor_start: req.cursor_pos,
            cursor_end: req.cursor_pos,
            ..Default::default()
        }
        .into(),
        C::InspectRequest(_) => InspectReply::default().into(),
        C::IsCompleteRequest(req) => super::complete::is_complete(&req.code).into(),
        C::HistoryRequest(_) => HistoryReply::new(Vec::new()).into(),
        C::CommInfoRequest(_) => CommInfoReply::default().into(),
        // jupyter_client sends `history_request` without the fields the protocol crate wants.
        C::UnknownMessage(msg) if msg.msg_type == "history_request" => HistoryReply::new(Vec::new()).into(),
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
        let unknown = JupyterMessageContent::from_type_and_content("frobnicate_request", serde_json::json!({})).unwrap();
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
