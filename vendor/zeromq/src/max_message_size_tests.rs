//! A peer that announces an oversized frame is disconnected, without the
//! socket allocating for it, and the socket keeps serving its other peers.

use crate::codec::CodecError;
use crate::*;

use futures::channel::{mpsc, oneshot};
use futures::StreamExt;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const LIMIT: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(10);
const ANNOUNCED: usize = 1 << 44;
// A message frame of 2^44 bytes, as in the report that made the decoder abort.
const OVERSIZED_FRAME: [u8; 9] = [0x02, 0, 0, 0x10, 0, 0, 0, 0, 0];
// The same length on a command frame, sent in place of READY.
const OVERSIZED_COMMAND: [u8; 9] = [0x06, 0, 0, 0x10, 0, 0, 0, 0, 0];

fn limited() -> SocketOptions {
    let mut options = SocketOptions::default();
    options.max_message_size(LIMIT);
    options
}

fn port(endpoint: &Endpoint) -> u16 {
    match endpoint {
        Endpoint::Tcp(_, port) => *port,
        Endpoint::Ipc(_) => unreachable!("tests bind tcp"),
    }
}

/// ZMTP 3.0 greeting with the NULL mechanism, written out by hand so the
/// bad peer does not depend on the codec under test.
fn greeting() -> Vec<u8> {
    let mut greeting = vec![0u8; 64];
    greeting[0] = 0xff;
    greeting[9] = 0x7f;
    greeting[10] = 3;
    greeting[12..16].copy_from_slice(b"NULL");
    greeting
}

fn ready(socket_type: &str) -> Vec<u8> {
    let mut body = vec![5];
    body.extend_from_slice(b"READY");
    body.push(11);
    body.extend_from_slice(b"Socket-Type");
    body.extend_from_slice(&(socket_type.len() as u32).to_be_bytes());
    body.extend_from_slice(socket_type.as_bytes());
    let mut command = vec![0x04, body.len() as u8];
    command.extend_from_slice(&body);
    command
}

/// Connects a raw TCP peer on its own thread, sends `bytes`, and reports
/// what the socket sent back until it closed the connection. A peer left
/// open makes the read time out, which the report carries as an error.
fn raw_peer(port: u16, bytes: Vec<u8>) -> oneshot::Receiver<io::Result<Vec<u8>>> {
    let (sender, receiver) = oneshot::channel();
    std::thread::spawn(move || {
        let result = (|| {
            let mut stream = TcpStream::connect(("127.0.0.1", port))?;
            stream.set_read_timeout(Some(TIMEOUT))?;
            stream.write_all(&bytes)?;
            let mut received = Vec::new();
            match stream.read_to_end(&mut received) {
                Ok(_) => Ok(received),
                // Also a close: the socket dropped the connection with our bytes unread.
                Err(error) if error.kind() == io::ErrorKind::ConnectionReset => Ok(received),
                Err(error) => Err(error),
            }
        })();
        let _ = sender.send(result);
    });
    receiver
}

fn bad_peer(port: u16, socket_type: &str) -> oneshot::Receiver<io::Result<Vec<u8>>> {
    let mut bytes = greeting();
    bytes.extend_from_slice(&ready(socket_type));
    bytes.extend_from_slice(&OVERSIZED_FRAME);
    raw_peer(port, bytes)
}

async fn closed_after_handshake(peer: oneshot::Receiver<io::Result<Vec<u8>>>) {
    let received = async_rt::task::timeout(TIMEOUT, peer)
        .await
        .expect("peer thread timed out")
        .expect("peer thread ended")
        .expect("the socket should close the bad peer's connection");
    // The socket's greeting and READY came first, so the handshake succeeded
    // and the oversized frame, not the handshake, ended the connection.
    assert_eq!(received[0], 0xff);
    assert!(received.len() > 64, "no READY from the socket");
}

type Served = (
    mpsc::UnboundedReceiver<ZmqResult<ZmqMessage>>,
    oneshot::Sender<()>,
);

/// Runs `recv` in a task and forwards each result, so the socket keeps
/// polling its peers while the test waits on the raw peer. After the first
/// error it waits for the returned sender before calling `recv` again, so a
/// test can check that the error itself dropped the peer. With `echo` it sends
/// each message back, as a REP must before its next request.
fn serve<S: SocketRecv + SocketSend + Send + 'static>(mut socket: S, echo: bool) -> Served {
    let (sender, receiver) = mpsc::unbounded();
    let (resume, resumed) = oneshot::channel();
    async_rt::task::spawn(async move {
        let mut resumed = Some(resumed);
        loop {
            let result = socket.recv().await;
            if let (true, Ok(message)) = (echo, &result) {
                socket.send(message.clone()).await.unwrap();
            }
            let failed = result.is_err();
            if sender.unbounded_send(result).is_err() {
                break;
            }
            if failed {
                if let Some(resumed) = resumed.take() {
                    let _ = resumed.await;
                }
            }
        }
    });
    (receiver, resume)
}

async fn next<T>(receiver: &mut mpsc::UnboundedReceiver<T>) -> T {
    async_rt::task::timeout(TIMEOUT, receiver.next())
        .await
        .expect("timed out")
        .expect("channel closed")
}

fn is_too_large(error: &ZmqError) -> bool {
    matches!(
        error,
        ZmqError::Codec(CodecError::MessageTooLarge {
            size: ANNOUNCED,
            limit: LIMIT
        })
    )
}

#[async_rt::test]
async fn router_drops_a_peer_announcing_an_oversized_frame_and_keeps_serving() {
    let mut router = RouterSocket::with_options(limited());
    let endpoint = router.bind("tcp://127.0.0.1:0").await.unwrap();
    let (mut received, _resume) = serve(router, false);

    closed_after_handshake(bad_peer(port(&endpoint), "DEALER")).await;

    let mut dealer = DealerSocket::new();
    dealer.connect(&endpoint.to_string()).await.unwrap();
    dealer.send("hello".into()).await.unwrap();
    // ROUTER drops the bad peer inside recv and returns no error for it.
    let message = next(&mut received).await.unwrap();
    assert_eq!(message.len(), 2);
    assert_eq!(message.get(1).unwrap().as_ref(), b"hello");
}

#[async_rt::test]
async fn router_drops_a_peer_announcing_an_oversized_command_without_a_limit() {
    let mut router = RouterSocket::new();
    let endpoint = router.bind("tcp://127.0.0.1:0").await.unwrap();
    let (mut received, _resume) = serve(router, false);

    let mut bytes = greeting();
    bytes.extend_from_slice(&OVERSIZED_COMMAND);
    let received_by_peer = async_rt::task::timeout(TIMEOUT, raw_peer(port(&endpoint), bytes))
        .await
        .expect("peer thread timed out")
        .expect("peer thread ended")
        .expect("the socket should close the connection during the handshake");
    assert_eq!(received_by_peer[0], 0xff);

    let mut dealer = DealerSocket::new();
    dealer.connect(&endpoint.to_string()).await.unwrap();
    dealer.send("hello".into()).await.unwrap();
    let message = next(&mut received).await.unwrap();
    assert_eq!(message.get(1).unwrap().as_ref(), b"hello");
}

#[async_rt::test]
async fn rep_reports_and_drops_a_peer_announcing_an_oversized_frame_and_keeps_serving() {
    let mut rep = RepSocket::with_options(limited());
    let endpoint = rep.bind("tcp://127.0.0.1:0").await.unwrap();
    let (mut received, resume) = serve(rep, true);

    let bad = bad_peer(port(&endpoint), "REQ");
    // REP returns the bad peer's error from recv; the next recv serves on.
    let error = next(&mut received).await.unwrap_err();
    assert!(is_too_large(&error), "{error:?}");
    closed_after_handshake(bad).await;
    resume.send(()).unwrap();

    let mut req = ReqSocket::new();
    req.connect(&endpoint.to_string()).await.unwrap();
    req.send("ping".into()).await.unwrap();
    assert_eq!(
        next(&mut received).await.unwrap().get(0).unwrap().as_ref(),
        b"ping"
    );
    let reply = async_rt::task::timeout(TIMEOUT, req.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.get(0).unwrap().as_ref(), b"ping");
}

#[async_rt::test]
async fn xpub_reports_and_drops_a_peer_announcing_an_oversized_frame_and_keeps_serving() {
    let mut xpub = XPubSocket::with_options(limited());
    let endpoint = xpub.bind("tcp://127.0.0.1:0").await.unwrap();
    let (mut received, resume) = serve(xpub, false);

    let bad = bad_peer(port(&endpoint), "SUB");
    let error = next(&mut received).await.unwrap_err();
    assert!(is_too_large(&error), "{error:?}");
    closed_after_handshake(bad).await;
    resume.send(()).unwrap();

    let mut sub = SubSocket::new();
    sub.connect(&endpoint.to_string()).await.unwrap();
    sub.subscribe("topic").await.unwrap();
    let subscription = next(&mut received).await.unwrap();
    assert_eq!(subscription.get(0).unwrap().as_ref(), b"\x01topic");
}

#[async_rt::test]
async fn pub_drops_a_peer_announcing_an_oversized_frame_and_keeps_publishing() {
    let mut publisher = PubSocket::with_options(limited());
    let endpoint = publisher.bind("tcp://127.0.0.1:0").await.unwrap();

    closed_after_handshake(bad_peer(port(&endpoint), "SUB")).await;

    let mut sub = SubSocket::new();
    sub.connect(&endpoint.to_string()).await.unwrap();
    sub.subscribe("").await.unwrap();
    // The subscription reaches PUB asynchronously; publish until one arrives.
    let received = async_rt::task::timeout(TIMEOUT, async {
        loop {
            publisher.send("news".into()).await.unwrap();
            if let Ok(message) =
                async_rt::task::timeout(Duration::from_millis(50), sub.recv()).await
            {
                return message.unwrap();
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(received.get(0).unwrap().as_ref(), b"news");
}
