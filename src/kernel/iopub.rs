//! IOPub (messaging spec 5.4): one ordered queue of everything the kernel publishes, with
//! stream text coalesced and bounded, and JEP 65's `iopub_welcome` for each new subscriber.
//!
//! A cell that prints line by line would otherwise publish a message per line, each with its
//! own header and signature: 200,000 lines are 200,000 messages, and a subscriber that reads
//! slowly makes them pile up. Text of one stream of one request is instead gathered for
//! [`COALESCE`] (or up to [`CHUNK`] bytes) into one message. Text that cannot leave (more than
//! [`QUEUED`] bytes waiting) is dropped and counted, and the count is published as a note, so
//! the kernel's memory stays flat whatever a cell prints.

use super::wire::{self, Author, Signer};
use anyhow::Context;
use bytes::Bytes;
use futures::channel::mpsc::UnboundedReceiver as Subscriptions;
use futures::StreamExt;
use jupyter_protocol::{Header, IoPubWelcome, JupyterMessage, JupyterMessageContent, Status, Stdio, StreamContent};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;
use zeromq::{PubSocket, Socket, SocketSend, ZmqMessage};

/// How long stream text waits for more of its stream before it is published.
pub const COALESCE: Duration = Duration::from_millis(30);
/// The most text one stream message carries.
pub const CHUNK: usize = 64 * 1024;
/// The most stream text that may wait to be published; more is dropped and counted.
pub const QUEUED: usize = 8 * 1024 * 1024;

/// One thing to publish, as a child of `parent`.
struct Outgoing {
    parent: Option<Header>,
    content: JupyterMessageContent,
}

/// The publishing side, cheap to clone: each clone feeds the same ordered queue.
#[derive(Clone)]
pub struct Iopub {
    tx: UnboundedSender<Outgoing>,
    /// Stream bytes sent into the queue and not yet taken out.
    queued: Arc<AtomicUsize>,
    /// Stream bytes dropped because [`QUEUED`] was reached, not yet reported.
    dropped: Arc<AtomicUsize>,
}

impl Iopub {
    /// Binds the socket to `url` and starts the task that owns it.
    pub async fn spawn(mut socket: PubSocket, url: &str, signer: Signer, author: Author) -> anyhow::Result<Iopub> {
        // libzmq's default high-water mark: a subscriber that stops reading costs at most
        // this many messages (of at most CHUNK bytes of text each) before its are dropped.
        socket.set_send_high_water_mark(1000);
        let subscriptions = socket.subscriptions();
        socket.bind(url).await.context("bind iopub")?;
        let (tx, rx) = unbounded_channel();
        let iopub = Iopub { tx, queued: Arc::default(), dropped: Arc::default() };
        let publisher = Publisher { socket, signer, author, iopub: iopub.clone(), pending: None };
        tokio::spawn(publisher.run(rx, subscriptions));
        Ok(iopub)
    }

    /// Publishes `content` as a child of the request with header `parent`.
    pub fn publish(&self, parent: Option<&Header>, content: impl Into<JupyterMessageContent>) {
        let content = content.into();
        if let JupyterMessageContent::StreamContent(stream) = &content {
            let bytes = stream.text.len();
            if self.queued.fetch_add(bytes, Ordering::SeqCst) + bytes > QUEUED {
                self.queued.fetch_sub(bytes, Ordering::SeqCst);
                self.dropped.fetch_add(bytes, Ordering::SeqCst);
                return;
            }
        }
        let _ = self.tx.send(Outgoing { parent: parent.cloned(), content });
    }

    /// `busy` or `idle` for `parent`.
    pub fn status(&self, parent: &JupyterMessage, busy: bool) {
        self.publish(Some(&parent.header), if busy { Status::busy() } else { Status::idle() });
    }
}

/// Stream text gathered for one stream of one request.
struct Pending {
    parent: Option<Header>,
    name: Stdio,
    text: String,
    due: Instant,
}

impl Pending {
    fn takes(&self, parent: &Option<Header>, name: &Stdio, more: usize) -> bool {
        same_request(&self.parent, parent)
            && std::mem::discriminant(&self.name) == std::mem::discriminant(name)
            && self.text.len() + more <= CHUNK
    }
}

fn same_request(a: &Option<Header>, b: &Option<Header>) -> bool {
    a.as_ref().map(|h| &h.msg_id) == b.as_ref().map(|h| &h.msg_id)
}

struct Publisher {
    socket: PubSocket,
    signer: Signer,
    author: Author,
    iopub: Iopub,
    pending: Option<Pending>,
}

impl Publisher {
    async fn run(mut self, mut rx: UnboundedReceiver<Outgoing>, mut subscriptions: Subscriptions<Vec<u8>>) {
        loop {
            let due = self.pending.as_ref().map(|p| p.due);
            tokio::select! {
                biased;
                Some(topic) = subscriptions.next() => self.welcome(topic).await,
                next = rx.recv() => match next {
                    Some(out) => self.take(out).await,
                    None => break,
                },
                _ = sleep_until(due) => self.flush().await,
            }
        }
        self.flush().await;
    }

    async fn take(&mut self, out: Outgoing) {
        let JupyterMessageContent::StreamContent(stream) = out.content else {
            // Anything else ends the text before it, so the order on the wire is kept.
            self.flush().await;
            return self.send(out.parent, out.content, None).await;
        };
        self.iopub.queued.fetch_sub(stream.text.len(), Ordering::SeqCst);
        match &mut self.pending {
            Some(p) if p.takes(&out.parent, &stream.name, stream.text.len()) => p.text.push_str(&stream.text),
            _ => {
                self.flush().await;
                let due = Instant::now() + COALESCE;
                self.pending = Some(Pending { parent: out.parent, name: stream.name, text: stream.text, due });
            }
        }
    }

    async fn flush(&mut self) {
        if let Some(p) = self.pending.take() {
            for text in chunks(p.text) {
                self.send(p.parent.clone(), StreamContent { name: p.name.clone(), text }.into(), None).await;
            }
        }
        let dropped = self.iopub.dropped.swap(0, Ordering::SeqCst);
        if dropped > 0 {
            let text = format!(
                "glassbox: {dropped} bytes of output were dropped: the cell printed faster than its output could be sent\n"
            );
            self.send(None, StreamContent { name: Stdio::Stderr, text }.into(), None).await;
        }
    }

    /// JEP 65: tells a new subscriber that from now on it misses nothing. The topic is the
    /// subscription itself, so that subscriber gets it whatever prefix it chose.
    async fn welcome(&mut self, topic: Vec<u8>) {
        let subscription = String::from_utf8_lossy(&topic).into_owned();
        let topic = (!topic.is_empty()).then(|| Bytes::from(topic));
        self.send(None, IoPubWelcome::new(subscription).into(), topic).await;
    }

    async fn send(&mut self, parent: Option<Header>, content: JupyterMessageContent, topic: Option<Bytes>) {
        let mut msg = self.author.message(content);
        msg.parent_header = parent;
        // On PUB the first frame is a topic; Jupyter's convention is kernel.<id>.<msg_type>.
        let topic =
            topic.unwrap_or_else(|| Bytes::from(format!("kernel.{}.{}", self.author.session, msg.header.msg_type)));
        msg.zmq_identities = vec![topic];
        if let Ok(zmq) = ZmqMessage::try_from(wire::encode(&msg, &self.signer)) {
            let _ = self.socket.send(zmq).await;
        }
    }
}

/// Splits text into pieces of at most [`CHUNK`] bytes, at character boundaries.
fn chunks(text: String) -> Vec<String> {
    if text.len() <= CHUNK {
        return vec![text];
    }
    let mut pieces = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let mut end = rest.len().min(CHUNK);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        pieces.push(rest[..end].to_owned());
        rest = &rest[end..];
    }
    pieces
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_split_at_character_boundaries() {
        let text = "é".repeat(CHUNK); // two bytes each
        let pieces = chunks(text.clone());
        assert!(pieces.iter().all(|p| p.len() <= CHUNK));
        assert_eq!(pieces.concat(), text);
        assert_eq!(chunks("short".into()), vec!["short".to_string()]);
    }
}
