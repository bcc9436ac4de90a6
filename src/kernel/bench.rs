//! `glassbox bench kernel`: round-trip latency (request sent → `idle` received) of the kernel,
//! measured by a Jupyter client speaking the same wire format, against a kernel it starts.
//! kernel_info, which never touches the REPL, is the baseline the others are compared with.

use super::wire::{self, Signer};
use anyhow::{bail, Context, Result};
use jupyter_protocol::{
    CompleteRequest, ExecuteRequest, JupyterMessage, JupyterMessageContent, KernelInfoRequest, ShutdownRequest,
};
use std::path::Path;
use std::time::{Duration, Instant};
use zeromq::{DealerSocket, Socket, SocketRecv, SocketSend, SubSocket, ZmqMessage};

/// Requests timed per measurement.
pub const ROUNDS: usize = 20;

struct Client {
    shell: DealerSocket,
    iopub: SubSocket,
    signer: Signer,
}

impl Client {
    async fn send(&mut self, content: impl Into<JupyterMessageContent>) -> Result<String> {
        let msg = JupyterMessage::new(content, None);
        let id = msg.header.msg_id.clone();
        let frames = ZmqMessage::try_from(wire::encode(&msg, &self.signer)).map_err(|e| anyhow::anyhow!("{e}"))?;
        self.shell.send(frames).await?;
        Ok(id)
    }

    /// Waits for the `idle` status that ends request `id`, and for its reply.
    async fn finish(&mut self, id: &str) -> Result<JupyterMessage> {
        loop {
            let msg = wire::decode(self.iopub.recv().await?.into_vec(), &self.signer)?.msg;
            let ours = msg.parent_header.as_ref().is_some_and(|p| p.msg_id == id);
            if ours && matches!(&msg.content, JupyterMessageContent::Status(s) if s.execution_state.as_str() == "idle")
            {
                break;
            }
        }
        loop {
            let reply = wire::decode(self.shell.recv().await?.into_vec(), &self.signer)?.msg;
            if reply.parent_header.as_ref().is_some_and(|p| p.msg_id == id) {
                return Ok(reply);
            }
        }
    }

    async fn round_trip(&mut self, content: JupyterMessageContent) -> Result<(Duration, JupyterMessage)> {
        let started = Instant::now();
        let id = self.send(content).await?;
        let reply = self.finish(&id).await?;
        Ok((started.elapsed(), reply))
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Starts a kernel, warms it up, and prints the median latencies.
pub async fn kernel(exe: &Path) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("glassbox-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let key = uuid::Uuid::new_v4().to_string();
    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect::<Result<_>>()?;
    let info = serde_json::json!({
        "ip": "127.0.0.1", "transport": "tcp", "signature_scheme": "hmac-sha256", "key": key,
        "shell_port": ports[0], "iopub_port": ports[1], "stdin_port": ports[2],
        "control_port": ports[3], "hb_port": ports[4],
    });
    let file = dir.join("connection.json");
    std::fs::write(&file, info.to_string())?;
    let mut child = std::process::Command::new(exe)
        .args(["kernel", "--connection-file"])
        .arg(&file)
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("start the kernel")?;
    let result = measure(&ports, &key).await;
    let _ = child.wait_timeout_or_kill(Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(ports: &[u16], key: &str) -> Result<()> {
    let mut shell = DealerSocket::new();
    let mut iopub = SubSocket::new();
    iopub.subscribe("").await?;
    let url = |p: u16| format!("tcp://127.0.0.1:{p}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let connected = async { shell.connect(&url(ports[0])).await.and(iopub.connect(&url(ports[1])).await) };
        match connected.await {
            Ok(()) => break,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => bail!("kernel did not open its sockets: {e}"),
        }
    }
    let mut client = Client { shell, iopub, signer: Signer::new(key) };
    // The PUB side drops messages until the subscription has reached it: retry until a
    // kernel_info round trip completes.
    loop {
        let id = client.send(KernelInfoRequest {}).await?;
        if tokio::time::timeout(Duration::from_secs(1), client.finish(&id)).await.is_ok() {
            break;
        }
    }
    eprintln!("warming up the REPL (the first start on a machine compiles the library: minutes)...");
    let execute = |code: &str| JupyterMessageContent::ExecuteRequest(ExecuteRequest::new(code.into()));
    let (warm, reply) = client.round_trip(execute("1")).await?;
    if let JupyterMessageContent::ExecuteReply(r) = &reply.content {
        if r.error.is_some() {
            bail!("the warm-up cell failed: {:?}", r.error);
        }
    }
    eprintln!("warm-up took {:.1} s", warm.as_secs_f64());
    let cases: [(&str, Box<dyn Fn() -> JupyterMessageContent>); 4] = [
        ("kernel_info (baseline)", Box::new(|| KernelInfoRequest {}.into())),
        ("trivial Rust cell `1`", Box::new(move || execute("1"))),
        ("`:vars`", Box::new(move || execute(":vars"))),
        ("completion `:se`", Box::new(|| CompleteRequest { code: ":se".into(), cursor_pos: 3 }.into())),
    ];
    let mut baseline = None;
    println!("{:<26} {:>12} {:>12}", "request → idle", "median", "× baseline");
    for (name, make) in &cases {
        let mut times = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            times.push(client.round_trip(make()).await?.0);
        }
        let m = median(times);
        let base = *baseline.get_or_insert(m);
        println!("{name:<26} {:>9.2} ms {:>11.1}×", m.as_secs_f64() * 1e3, m.as_secs_f64() / base.as_secs_f64());
    }
    let _ = client.send(ShutdownRequest { restart: false }).await;
    Ok(())
}

trait WaitOrKill {
    fn wait_timeout_or_kill(&mut self, limit: Duration) -> std::io::Result<()>;
}

impl WaitOrKill for std::process::Child {
    fn wait_timeout_or_kill(&mut self, limit: Duration) -> std::io::Result<()> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill()
    }
}
