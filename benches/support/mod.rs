//! What the end-to-end benches share: the real binary started on port 0,
//! stopped by its PID, and accounts made through the API.
// Each bench uses a different subset.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{json, Value};

/// `key` from the environment, else `default`.
pub fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A running `agora serve`, stopped (SIGTERM) when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub base: String,
    _data: Option<tempfile::TempDir>,
}

impl Server {
    /// On a fresh temp data dir, with `extra` flags.
    pub fn start(extra: &[&str]) -> Server {
        let data = tempfile::tempdir().expect("temp dir");
        let mut server = Server::start_in(data.path(), extra);
        server._data = Some(data);
        server
    }

    /// On `dir` (which outlives the server), with `extra` flags. Rate limits
    /// off; `AGORA_*` variables pass through; `AGORA_BIN` runs another build
    /// (A/B comparisons in one session).
    pub fn start_in(dir: &Path, extra: &[&str]) -> Server {
        let bin =
            std::env::var("AGORA_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_agora").to_owned());
        let mut child = Command::new(bin)
            .args([
                "serve",
                "--http",
                "127.0.0.1:0",
                "--rate-limit-per-sec",
                "0",
            ])
            .arg("--data-dir")
            .arg(dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .envs(std::env::vars().filter(|(k, _)| k.starts_with("AGORA_")))
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start agora");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let base = loop {
            let line = lines.next().expect("agora exited").expect("read stdout");
            if let Some(addr) = line.strip_prefix("agora listening on ") {
                break addr.trim().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            base,
            _data: None,
        }
    }

    /// The server's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time the server process has used so far (user + system), µs.
    pub fn cpu_micros(&self) -> u64 {
        cpu_micros_of(&self.pid().to_string())
    }

    /// Resident memory of the server, KiB.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Signs up `email` with `role` and returns a session token.
pub async fn token(client: &Client, base: &str, email: &str, role: &str) -> String {
    let body = json!({"email": email, "password": "benchmark", "name": "Bench", "role": role});
    let created = client
        .post(format!("{base}/users"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let session = fetch_json(
        client
            .post(format!("{base}/sessions"))
            .json(&json!({"email": email, "password": "benchmark"})),
    )
    .await;
    session["token"].as_str().unwrap().to_owned()
}

/// Sends `request` and returns its JSON body.
pub async fn fetch_json(request: RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Lists an item as `seller`; returns its id.
pub async fn create_item(client: &Client, base: &str, seller: &str, body: &Value) -> String {
    let item = fetch_json(
        client
            .post(format!("{base}/items"))
            .bearer_auth(seller)
            .json(body),
    )
    .await;
    item["id"].as_str().unwrap().to_owned()
}

/// CPU time (user + system) process `pid` has used so far, µs; `"self"`
/// for this process.
#[allow(dead_code)] // not every bench that includes this module reads CPU
pub fn cpu_micros_of(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are
    // the 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    fields.iter().sum::<u64>() * 1_000_000 / ticks
}
