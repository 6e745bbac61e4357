//! `TestApp`: a real `agora serve` process on a free port with its own data
//! directory, and one method per endpoint the tests use.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;

/// A running server process.
pub struct TestApp {
    pub base: String,
    pub client: Client,
    child: Option<Child>,
    data: Arc<TempDir>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    logs: Arc<Mutex<String>>,
}

/// How to start a server.
#[derive(Default, Clone)]
pub struct Options {
    /// Extra command-line arguments after `serve`.
    pub args: Vec<String>,
    /// Extra `AGORA_*` environment variables.
    pub env: Vec<(String, String)>,
}

impl Options {
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
}

impl TestApp {
    /// A server with default settings, except rate limits off.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(Options::default().env("AGORA_RATE_LIMIT_PER_SEC", "0")).await
    }

    /// A server with the given options.
    pub async fn spawn_with(options: Options) -> TestApp {
        let data = Arc::new(TempDir::new().expect("temp dir"));
        Self::start(data, options.args, options.env)
    }

    fn start(data: Arc<TempDir>, args: Vec<String>, env: Vec<(String, String)>) -> TestApp {
        let logs = Arc::new(Mutex::new(String::new()));
        let (child, addr) = launch(data.path(), &args, &env, &logs).unwrap_or_else(|status| {
            panic!("server did not start ({status}):\n{}", logs.lock().unwrap())
        });
        let client = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        TestApp {
            base: format!("http://{addr}"),
            client,
            child: Some(child),
            data,
            args,
            env,
            logs,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Everything the server printed so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("reap");
        }
    }

    /// SIGTERM, then waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.send_sigterm();
        self.wait_exit()
    }

    /// Sends SIGTERM without waiting.
    pub fn send_sigterm(&self) {
        let child = self.child.as_ref().expect("running");
        // SAFETY: sending a signal to our own child process by its pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.child.take().expect("running").wait().expect("reap")
    }

    /// Starts a new process on the same data directory (and options).
    pub fn restart(self) -> TestApp {
        self.restart_with(&[])
    }

    /// [`Self::restart`] with these `AGORA_*` settings changed.
    pub fn restart_with(mut self, settings: &[(&str, &str)]) -> TestApp {
        if self.child.is_some() {
            self.terminate();
        }
        let mut env = self.env.clone();
        for (key, value) in settings {
            env.retain(|(k, _)| k != key);
            env.push(((*key).to_owned(), (*value).to_owned()));
        }
        Self::start(self.data.clone(), self.args.clone(), env)
    }

    // ---- requests -------------------------------------------------------

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("GET")
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Response {
        let mut request = self.client.request(method, self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.send_json(reqwest::Method::POST, path, token, body)
            .await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.send_json(reqwest::Method::PATCH, path, token, body)
            .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.delete(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("DELETE")
    }

    pub async fn register(&self, email: &str, password: &str, role: &str) -> Response {
        self.post(
            "/users",
            None,
            &json!({"email": email, "password": password, "name": "Test User", "role": role}),
        )
        .await
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> Response {
        self.post(
            "/sessions",
            None,
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers a fresh user with `role` and returns a session token.
    pub async fn user_token(&self, role: &str) -> String {
        let email = format!("{}-{}@example.com", role, ulid_like());
        let created = self.register(&email, "correct horse", role).await;
        assert_eq!(created.status(), StatusCode::CREATED, "register");
        let session = self.sign_in(&email, "correct horse").await;
        assert_eq!(session.status(), StatusCode::CREATED, "sign in");
        let body: Value = session.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    /// A fresh user of `role` who lives on this node (in a cluster, users
    /// are placed by their email: this registers until one lands here),
    /// signed in; returns the token. On a single node, the first one.
    pub async fn home_user_token(&self, role: &str) -> String {
        let me = self.get_json("/cluster").await["node"]
            .as_str()
            .unwrap()
            .to_owned();
        loop {
            let email = format!("{}-{}@example.com", role, ulid_like());
            let created = self.register(&email, "correct horse", role).await;
            assert_eq!(created.status(), StatusCode::CREATED, "register");
            let id = created.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned();
            if self.placement("user", &id).await["node"] != me.as_str() {
                continue;
            }
            let session = self.sign_in(&email, "correct horse").await;
            assert_eq!(session.status(), StatusCode::CREATED, "sign in");
            let body: Value = session.json().await.unwrap();
            return body["token"].as_str().unwrap().to_owned();
        }
    }

    /// `GET path` expecting 200; returns the body.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    /// Creates an item as `token`'s seller; returns its JSON.
    pub async fn create_item(&self, token: &str, body: &Value) -> Value {
        let response = self.post("/items", Some(token), body).await;
        assert_eq!(response.status(), StatusCode::CREATED, "create item");
        response.json().await.unwrap()
    }

    /// `http://host:port` of the admin listener, if the server opened one
    /// (it prints that line before the public one).
    pub fn admin_base(&self) -> Option<String> {
        let logs = self.logs();
        let address = logs
            .lines()
            .find_map(|line| line.strip_prefix("agora admin listening on "))?;
        Some(address.trim().to_owned())
    }

    /// `POST /items/{item}/images` with `body` as `content_type`, as
    /// `token` (or anonymous).
    pub async fn upload_image(
        &self,
        token: Option<&str>,
        item: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Response {
        let mut request = self
            .client
            .post(self.url(&format!("/items/{item}/images")))
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// `host:port` this server listens on.
    pub fn address(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// `GET /cluster`: each node's id, HTTP address and status, in order.
    pub async fn cluster_nodes(&self) -> Vec<(String, String, String)> {
        let body = self.get_json("/cluster").await;
        let text = |node: &Value, key: &str| node[key].as_str().unwrap_or_default().to_owned();
        body["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|node| (text(node, "id"), text(node, "http"), text(node, "status")))
            .collect()
    }

    /// The status `GET /cluster` gives node `id` ("up", "down"; "" if unlisted).
    pub async fn status_of(&self, id: &str) -> String {
        let nodes = self.cluster_nodes().await;
        let node = nodes.into_iter().find(|(node, _, _)| node == id);
        node.map(|(_, _, status)| status).unwrap_or_default()
    }

    /// SIGSTOP: the process stays, frozen (a stalled VM, a long GC pause).
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`Self::freeze`].
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("running");
        // SAFETY: sending a signal to our own child process by its pid.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    }

    /// `GET /cluster/placement/{kind}/{id}` expecting 200; returns the body.
    pub async fn placement(&self, kind: &str, id: &str) -> Value {
        self.get_json(&format!("/cluster/placement/{kind}/{id}"))
            .await
    }
}

/// A real 1x1 RGBA PNG (valid chunks and checksums).
pub const ONE_PIXEL_PNG: &[u8] =
    b"\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\
\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\x0b\x49\x44\x41\
\x54\x78\x9c\x63\x60\x00\x02\x00\x00\x05\x00\x01\x7a\x5e\xab\x3f\x00\x00\x00\x00\x49\x45\x4e\x44\
\xae\x42\x60\x82";

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The design's item body.
pub fn mouse() -> Value {
    json!({"name": "Wireless Mouse", "description": "Ergonomic Bluetooth Mouse", "price": 999, "quantity": 100})
}

/// `/items/{id}` of an item's JSON.
pub fn item_path(item: &Value) -> String {
    format!("/items/{}", item["id"].as_str().unwrap())
}

/// A problem+json body, checked for shape.
pub async fn problem(response: Response) -> Value {
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let body: Value = response.json().await.unwrap();
    assert!(
        body["code"].is_string() && body["status"].is_u64() && body["title"].is_string(),
        "{body}"
    );
    body
}

pub fn ulid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Runs the binary and waits for its "listening on" line.
fn launch(
    data: &Path,
    args: &[String],
    env: &[(String, String)],
    logs: &Arc<Mutex<String>>,
) -> Result<(Child, String), String> {
    let mut serve: Vec<String> = ["serve", "--http", "127.0.0.1:0", "--data-dir"]
        .map(String::from)
        .to_vec();
    serve.push(data.join("node").to_string_lossy().into_owned());
    serve.extend(args.iter().cloned());
    let mut command = agora_command(data, &serve, env);
    command.env("RUST_LOG", "info");
    let mut child = command.spawn().map_err(|e| e.to_string())?;
    let (addr_tx, addr_rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out_logs = logs.clone();
    std::thread::spawn(move || {
        // Keep draining after the address line: a full pipe would block the server.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("agora listening on http://") {
                let _ = addr_tx.send(addr.trim().to_owned());
            }
            let mut logs = out_logs.lock().unwrap();
            logs.push_str(&line);
            logs.push('\n');
        }
    });
    let err_logs = logs.clone();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text);
        err_logs.lock().unwrap().push_str(&text);
    });
    match addr_rx.recv_timeout(Duration::from_secs(60)) {
        Ok(addr) => Ok((child, addr)),
        Err(_) => {
            let status = child
                .try_wait()
                .ok()
                .flatten()
                .map_or("still running".to_owned(), |s| s.to_string());
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            Err(status)
        }
    }
}

/// The `agora` binary with `args`, run in `dir` (where no cluster.toml is),
/// without the caller's `AGORA_*` settings, with `env` added.
pub fn agora_command<A: AsRef<std::ffi::OsStr>>(
    dir: &Path,
    args: &[A],
    env: &[(String, String)],
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agora"));
    command
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("AGORA_")) {
        command.env_remove(key);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// Runs the binary to completion with `args` (for start-up failures).
pub fn run_to_exit(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let output = agora_command(dir, args, &env).output().expect("run agora");
    let text = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    (output.status, text)
}

/// Runs the binary to completion with `args`: (status, stdout, stderr).
pub fn run_output(dir: &Path, args: &[&str]) -> (ExitStatus, String, String) {
    let output = agora_command(dir, args, &[]).output().expect("run agora");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Whether any file under `dir` contains `needle`.
pub fn dir_contains(dir: &Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            dir_contains(&path, needle)
        } else {
            std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        }
    })
}

/// Polls `check` until it holds (at most ~10 s).
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 10 s");
}
