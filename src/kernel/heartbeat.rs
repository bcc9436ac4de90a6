//! The heartbeat (messaging spec 5.4): a REP socket that echoes every ping.
//!
//! A client reads a missed echo as a dead kernel, so the echo must not wait for anything
//! else the kernel does. It runs on a thread and a tokio runtime of its own, as ipykernel's
//! heartbeat runs on its own thread: a worker of the main runtime that is blocked, a task
//! that does not yield, or a burst of work on the other sockets cannot delay it.

use anyhow::{anyhow, Context, Result};
use tokio::sync::oneshot;
use zeromq::{RepSocket, Socket, SocketOptions, SocketRecv, SocketSend};

/// Binds the heartbeat at `url` and echoes pings there until the process ends. Returns once
/// the socket is bound, or with the reason it could not be.
pub async fn spawn(url: String, options: SocketOptions) -> Result<()> {
    let (bound, is_bound) = oneshot::channel::<Result<()>>();
    std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = bound.send(Err(anyhow!(e).context("heartbeat runtime")));
                    return;
                }
            };
            runtime.block_on(echo(url, options, bound));
        })
        .context("heartbeat thread")?;
    is_bound.await.context("the heartbeat thread ended before binding")?
}

async fn echo(url: String, options: SocketOptions, bound: oneshot::Sender<Result<()>>) {
    let mut socket = RepSocket::with_options(options);
    if let Err(e) = socket.bind(&url).await {
        let _ = bound.send(Err(anyhow!(e).context("bind heartbeat")));
        return;
    }
    let _ = bound.send(Ok(()));
    loop {
        match socket.recv().await {
            Ok(ping) => {
                let _ = socket.send(ping).await;
            }
            Err(e) => super::server::refused("heartbeat", &e).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use zeromq::{ReqSocket, ZmqMessage};

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    /// A client on a thread and runtime of its own, as a Jupyter client is another process;
    /// the time limit covers the connection too, since the handshake needs the kernel's side.
    fn ping(url: &str, within: Duration) -> Result<Vec<u8>> {
        let url = url.to_owned();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let exchange = async {
                let mut req = ReqSocket::new();
                req.connect(&url).await?;
                req.send(ZmqMessage::from("are you there")).await?;
                let echo = req.recv().await?;
                Ok(echo.get(0).map(|f| f.to_vec()).unwrap_or_default())
            };
            runtime.block_on(async { tokio::time::timeout(within, exchange).await }).context("no echo")?
        })
        .join()
        .expect("ping thread")
    }

    #[test]
    fn the_heartbeat_echoes_while_every_worker_of_the_kernels_runtime_is_blocked() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let url = format!("tcp://127.0.0.1:{}", free_port());
        runtime.block_on(spawn(url.clone(), SocketOptions::default())).unwrap();
        assert_eq!(ping(&url, Duration::from_secs(5)).unwrap(), b"are you there");

        let (blocked, is_blocked) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            blocked.send(()).unwrap();
            std::thread::sleep(Duration::from_secs(4));
        });
        is_blocked.recv().unwrap();
        let echo = ping(&url, Duration::from_secs(2));
        assert_eq!(echo.unwrap(), b"are you there", "no echo within 2 s while the runtime's one worker was blocked");
    }

    #[test]
    fn a_port_in_use_is_an_error_that_names_the_heartbeat() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("tcp://127.0.0.1:{}", taken.local_addr().unwrap().port());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let e = runtime.block_on(spawn(url, SocketOptions::default())).unwrap_err();
        assert!(format!("{e:#}").contains("bind heartbeat"), "{e:#}");
    }
}
