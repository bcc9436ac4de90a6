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

/// A kernel started for measuring, with the lines of its log that say where its start went.
struct Started {
    child: std::process::Child,
    ports: Vec<u16>,
    key: String,
    log: std::sync::mpsc::Receiver<String>,
    dir: std::path::PathBuf,
}

fn start(exe: &Path) -> Result<Started> {
    let dir = std::env::temp_dir().join(format!("glassbox-bench-{}", uuid::Uuid::new_v4()));
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
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("start the kernel")?;
    let stderr = child.stderr.take().expect("piped stderr");
    let (lines, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let wanted = [super::repl::START_LOG, super::repl::ANALYSIS_LOG].iter().any(|w| line.contains(w));
            if wanted && lines.send(line).is_err() {
                break;
            }
        }
    });
    Ok(Started { child, ports, key, log, dir })
}

impl Started {
    fn stop(mut self) {
        let _ = self.child.wait_timeout_or_kill(Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Resident memory of the kernel process, in bytes (Linux).
    fn memory(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kb: u64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }
}

/// One measurement beside its goal.
fn row(name: &str, measured: Duration, goal: Duration, baseline: Duration) {
    println!(
        "{name:<40} {:>10.2} ms {:>10.0} ms {:>11.1}×  {}",
        measured.as_secs_f64() * 1e3,
        goal.as_secs_f64() * 1e3,
        measured.as_secs_f64() / baseline.as_secs_f64(),
        if measured <= goal { "met" } else { "not met" }
    );
}

/// Starts a kernel twice (the first start may compile the library for the REPL; the second
/// is a warm start), and prints the latencies and memory beside their goals, and where the
/// warm start's seconds went.
pub async fn kernel(exe: &Path) -> Result<()> {
    eprintln!("first start (compiles the library for the REPL if it changed: minutes)...");
    let cold = start(exe)?;
    let first = async {
        let mut client = connect(&cold.ports, &cold.key).await?;
        client.first_result().await
    };
    let took = first.await;
    let _ = shutdown(&cold).await;
    cold.stop();
    eprintln!("first start took {:.1} s; measuring rust-analyzer's warm-up, then a warm start...", took?.as_secs_f64());
    // The warm-up window has a kernel of its own: its untyped variable would slow every
    // later cell of the kernel measured below.
    let window = start(exe)?;
    let during = warm_up_window(&window).await;
    let _ = shutdown(&window).await;
    window.stop();
    let warm = start(exe)?;
    let result = measure(&warm, &during?).await;
    let _ = shutdown(&warm).await;
    warm.stop();
    result
}

/// What a user who goes on at once after the first result meets while rust-analyzer warms
/// up in the background.
struct WarmUpWindow {
    completion: Duration,
    completion_matches: usize,
    cell: Duration,
    untyped_variable: Duration,
}

async fn warm_up_window(kernel: &Started) -> Result<WarmUpWindow> {
    let mut client = connect(&kernel.ports, &kernel.key).await?;
    client.first_result().await?;
    let (completion, reply) = client.round_trip(rust_completion()).await?;
    let completion_matches = matches(&reply);
    let cell = client.round_trip(execute("1")).await?.0;
    let untyped_variable = client.round_trip(execute("let glassbox_bench = 40 + 2; glassbox_bench")).await?.0;
    Ok(WarmUpWindow { completion, completion_matches, cell, untyped_variable })
}

/// How many completions a reply offers.
fn matches(reply: &JupyterMessage) -> usize {
    match &reply.content {
        JupyterMessageContent::CompleteReply(r) => r.matches.len(),
        _ => 0,
    }
}

fn rust_completion() -> JupyterMessageContent {
    let code = "let v: Vec<i32> = Vec::new();\nv.le";
    CompleteRequest { code: code.into(), cursor_pos: code.chars().count() }.into()
}

async fn shutdown(kernel: &Started) -> Result<()> {
    let mut client = connect(&kernel.ports, &kernel.key).await?;
    client.send(ShutdownRequest { restart: false }).await?;
    Ok(())
}

async fn connect(ports: &[u16], key: &str) -> Result<Client> {
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
    Ok(client)
}

fn execute(code: &str) -> JupyterMessageContent {
    JupyterMessageContent::ExecuteRequest(ExecuteRequest::new(code.into()))
}

impl Client {
    /// Runs `1` and returns how long its result took.
    async fn first_result(&mut self) -> Result<Duration> {
        let (took, reply) = self.round_trip(execute("1")).await?;
        if let JupyterMessageContent::ExecuteReply(r) = &reply.content {
            if r.error.is_some() {
                bail!("the first cell failed: {:?}", r.error);
            }
        }
        Ok(took)
    }

    async fn median_of(&mut self, make: &dyn Fn() -> JupyterMessageContent) -> Result<Duration> {
        let mut times = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            times.push(self.round_trip(make()).await?.0);
        }
        Ok(median(times))
    }
}

async fn measure(kernel: &Started, during: &WarmUpWindow) -> Result<()> {
    let started = Instant::now();
    let mut client = connect(&kernel.ports, &kernel.key).await?;
    client.first_result().await?;
    let warm_start = started.elapsed();
    let memory = kernel.memory();
    // rust-analyzer warms up in the background once the first cell is answered; the rows
    // below are what a user meets after reading the result.
    let start_log = kernel.log.recv_timeout(Duration::from_secs(60)).ok();
    let analysis_log = kernel.log.recv_timeout(Duration::from_secs(120)).ok();
    let (first_completion, first_reply) = client.round_trip(rust_completion()).await?;
    let memory_warm = kernel.memory();
    let ms = Duration::from_millis;
    let baseline = client.median_of(&|| KernelInfoRequest {}.into()).await?;
    println!("{:<40} {:>13} {:>13} {:>12}", "request → idle (median)", "measured", "goal", "× baseline");
    row("kernel_info (baseline)", baseline, ms(1), baseline);
    row("warm start → first cell's result", warm_start, ms(3000), baseline);
    row("trivial Rust cell `1`", client.median_of(&|| execute("1")).await?, ms(300), baseline);
    row("`:vars`", client.median_of(&|| execute(":vars")).await?, ms(100), baseline);
    row("`:seed 3`", client.median_of(&|| execute(":seed 3")).await?, ms(100), baseline);
    row("`:help`", client.median_of(&|| execute(":help")).await?, ms(100), baseline);
    row("Rust completion during the warm-up", during.completion, ms(300), baseline);
    println!("{:<40} {} matches (none until rust-analyzer has the library)", "", during.completion_matches);
    row("cell `1` during the warm-up", during.cell, ms(300), baseline);
    let untyped = during.untyped_variable.as_secs_f64() * 1e3;
    println!("{:<40} {untyped:>10.2} ms {:>13} (rust-analyzer finds its type)", "untyped `let` during the warm-up", "");
    row("first Rust completion after the warm-up", first_completion, ms(300), baseline);
    println!("{:<40} {} matches (none if rust-analyzer answered late)", "", matches(&first_reply));
    row("Rust completion `v.le`", client.median_of(&rust_completion).await?, ms(300), baseline);
    let command_completion = || CompleteRequest { code: ":se".into(), cursor_pos: 3 }.into();
    row("completion `:se`", client.median_of(&command_completion).await?, ms(300), baseline);
    // rust-analyzer's index of std, tch and glassbox is what completion costs: about 0.7 GB,
    // held only once the warm-up has run.
    let memory_rows =
        [("kernel memory after the first cell", memory, 0.4), ("... after rust-analyzer warmed up", memory_warm, 1.0)];
    for (name, bytes, goal_gb) in memory_rows {
        match bytes {
            Some(bytes) => println!(
                "{name:<40} {:>10.2} GB {goal_gb:>10.2} GB {:>13}  {}",
                bytes as f64 / 1e9,
                "",
                if bytes as f64 <= goal_gb * 1e9 { "met" } else { "not met" }
            ),
            None => println!("{name}: not measurable here (no /proc)"),
        }
    }
    println!("\nwhere the warm start went (kernel log):");
    for line in [start_log, analysis_log] {
        println!("  {}", line.as_deref().map_or("(not logged)", |l| l.trim_start_matches("glassbox: ")));
    }
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
