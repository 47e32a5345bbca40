//! `gateway serve`: load and check the configuration, build the state, bind every
//! listener, follow the feed, and drain on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_core::feed_auth::FeedKeys;
use gateway_core::trust::{RootKey, TrustList};
use gateway_core::{Limits, Policy, Settings, Verifier};
use gateway_issuer::{keys, owner_only, DevSetup};
use http::header::HeaderValue;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::{App, FeedState};
use crate::callers::{Callers, Shares};
use crate::config::{ConfigError, FeedSource, ServeArgs, ServeConfig};
use crate::listen::guard::ConnCaps;
use crate::listen::{quic, tcp, tls};
use crate::metrics::Metrics;
use crate::slots::Slots;

/// What a spawned task is, for shutdown: listeners stop accepting and are awaited;
/// background tasks (feed, admin) run until the drain is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Listener,
    /// The feed: on stop it writes a last snapshot, which shutdown waits for.
    Feed,
    Background,
}

/// Longest wait at shutdown for the feed's last snapshot (10 million subjects take a few
/// seconds to write).
const FEED_STOP_LIMIT: Duration = Duration::from_secs(60);

/// Reads the feed keys (owner-only files of 32 bytes, base64url, one line).
fn load_feed_keys(paths: &[PathBuf]) -> Result<FeedKeys, ConfigError> {
    let keys = paths
        .iter()
        .map(|p| keys::read_feed_key(p))
        .collect::<Result<_, _>>()?;
    Ok(FeedKeys::new(keys))
}

/// Loads every file named by the configuration into a verifier.
fn load_verifier(
    cfg: &ServeConfig,
    feed_keys: &FeedKeys,
) -> Result<(Verifier, Option<RootKey>), ConfigError> {
    let trust_bytes = std::fs::read(&cfg.trust).map_err(|e| ConfigError::file(&cfg.trust, e))?;
    let (trust, refused) =
        TrustList::from_json(&trust_bytes).map_err(|e| ConfigError::file(&cfg.trust, e))?;
    if trust.is_empty() {
        return Err(ConfigError::file(
            &cfg.trust,
            format!("no usable key ({} refused)", refused.len()),
        ));
    }
    let root = keys::read_root_key(&cfg.root_key)?;
    let policy_text =
        std::fs::read_to_string(&cfg.policy).map_err(|e| ConfigError::file(&cfg.policy, e))?;
    let policy = match Policy::from_signed(policy_text.trim(), &root) {
        Ok(p) => p,
        Err(signed_err) if cfg.dev => match Policy::from_json(policy_text.as_bytes()) {
            Ok(p) => {
                tracing::warn!(path = %cfg.policy.display(), "DEVELOPMENT MODE: running on an UNSIGNED policy file");
                p
            }
            Err(_) => return Err(ConfigError::file(&cfg.policy, signed_err)),
        },
        Err(e) => return Err(ConfigError::file(&cfg.policy, e)),
    };
    if policy.is_shadow() {
        return Err(ConfigError::file(
            &cfg.policy,
            gateway_core::policy::PolicyError::ShadowOnly,
        ));
    }
    let pseudonyms = cfg
        .pseudonym_key
        .as_deref()
        .map(keys::read_pseudonym_key)
        .transpose()?;
    let settings = Settings {
        limits: Limits {
            skew: cfg.skew,
            max_validity: cfg.max_validity,
        },
        sig_cache_capacity: cfg.sig_cache,
        expected_subjects: 0,
        // Receipts on every deny, made with R derived from the first feed key
        // (api.md revision 4); none without a feed key.
        receipt_key: feed_keys
            .keys()
            .first()
            .map(|k| *gateway_core::decide::receipt::ReceiptKey::derive(k).bytes()),
    };
    Ok((
        Verifier::new(settings, trust, Some(policy), pseudonyms),
        Some(root),
    ))
}

async fn bind_tcp(addr: SocketAddr, flag: &str) -> Result<TcpListener, ConfigError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| ConfigError::flag(flag, format!("cannot listen on {addr}: {e}")))
}

/// Runs the gateway until a signal.
/// `args` already hold the TOML file's values (`ServeArgs::merge_file`, done by the
/// command line before the runtime starts, for `--sched-policy`).
pub async fn run(args: ServeArgs) -> Result<(), ConfigError> {
    let (cfg, dev_setup) = configure(args)?;
    // The recorder first: components register their handles as they are built.
    let prometheus = crate::metrics::install();
    raise_nofile_limit();
    let (app, root) = build_app(&cfg, dev_setup.is_some(), Metrics::register(prometheus))?;
    let sockets = bind(&cfg).await?;
    app.metrics.tls_not_after.set(sockets.not_after as f64);
    crate::pool::Pool::start(&app, app.limits.verify_threads)
        .map_err(|e| ConfigError::flag("verify-threads", format!("cannot start: {e}")))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let running = start_tasks(&cfg, &app, root, sockets, dev_setup.as_ref(), &stop_rx)?;
    announce(&cfg, &running, dev_setup.as_ref())?;
    wait_for_signal().await;
    shut_down(&cfg, &app, running, stop_tx).await;
    Ok(())
}

/// The configuration: flags over the TOML file, and for the quick start (no key
/// material named) the development setup, made if missing, which it then runs on.
fn configure(args: ServeArgs) -> Result<(ServeConfig, Option<DevSetup>), ConfigError> {
    let mut args = args;
    if !args.is_quick_start() {
        return Ok((args.resolve()?, None));
    }
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| crate::config::DEFAULT_STATE_DIR.into());
    let dev_setup = DevSetup::new(&state_dir);
    // Keys the gateway made itself are trusted by no one else: loopback only.
    for (flag, addr) in [("listen", args.listen), ("plain-listen", args.plain_listen)] {
        if let Some(a) = addr.filter(|a| !a.ip().is_loopback()) {
            return Err(ConfigError::flag(
                flag,
                format!("{a} is not a loopback address: the quick start runs on keys it generated itself; give --trust, --root-key, --policy and --callers to serve other hosts"),
            ));
        }
    }
    let made = dev_setup.ensure()?;
    // Only when the quick start follows its own feed file.
    if args.feed.is_none() {
        dev_setup.publish_offline()?;
    }
    args.use_dev_setup(&dev_setup);
    if made {
        tracing::warn!(dir = %state_dir.display(), "no keys given: generated a development setup (root key, issuer key, signed policy, API key, self-signed certificate)");
    }
    Ok((args.resolve()?, Some(dev_setup)))
}

/// The shared state, from every file the configuration names (each checked).
fn build_app(
    cfg: &ServeConfig,
    quick_start: bool,
    metrics: Metrics,
) -> Result<(Arc<App>, Option<RootKey>), ConfigError> {
    let feed_keys = load_feed_keys(&cfg.feed_keys)?;
    let (verifier, root) = load_verifier(cfg, &feed_keys)?;
    if !feed_keys.enabled() {
        tracing::warn!("no --feed-key: feed events are accepted without a mac (feed_auth false); rely on the broker's permissions alone only if no one else can write the feed");
    }
    let limits = cfg.limits.clone();
    let callers = Callers::load(
        &cfg.callers,
        Shares {
            in_flight: limits.caller_max_in_flight,
            streams: limits.caller_max_open_streams,
            bad_signatures_per_s: limits.caller_bad_signatures_per_s,
        },
    )?;
    check_feed_files(cfg)?;
    let app = App {
        verifier,
        callers,
        feed: FeedState::default(),
        metrics,
        dev: cfg.dev,
        stale_after: cfg.stale_after,
        boot: Instant::now(),
        in_flight: Slots::new(cfg.max_in_flight),
        open_streams: Slots::new(limits.max_open_streams),
        fixed_now: cfg.fixed_now,
        pool: crate::pool::Pool::new(limits.verify_queue),
        limits,
        quick_start,
        nats_insecure: cfg.nats_insecure,
        feed_keys,
        auth_headers: cfg.auth_headers.clone(),
        bundle_cache: parking_lot::Mutex::new(None),
    };
    Ok((Arc::new(app), root))
}

/// The feed file exists; the broker's credential files exist and are owner-only.
fn check_feed_files(cfg: &ServeConfig) -> Result<(), ConfigError> {
    if let FeedSource::File(p) = &cfg.feed {
        if !p.exists() {
            return Err(ConfigError::flag(
                "feed",
                format!("{} does not exist", p.display()),
            ));
        }
    }
    for (flag, file) in [
        ("nats-token-file", &cfg.nats.token_file),
        ("nats-creds", &cfg.nats.creds),
        ("nats-nkey", &cfg.nats.nkey),
        ("nats-ca", &cfg.nats.ca),
    ] {
        let Some(f) = file else { continue };
        if !f.is_file() {
            return Err(ConfigError::flag(
                flag,
                format!("{} does not exist", f.display()),
            ));
        }
        // The broker's credentials are secrets like the keys (cli.md); the CA is not.
        if flag != "nats-ca" {
            owner_only::check_secret(f)?;
        }
        if flag == "nats-nkey" {
            crate::issue::check_nkey_seed(f, &owner_only::read_secret_text(f)?)?;
        }
    }
    Ok(())
}

/// Every socket, bound before anything is served.
struct Sockets {
    tcp_tls: Arc<rustls::ServerConfig>,
    listener: TcpListener,
    local: SocketAddr,
    endpoint: quinn::Endpoint,
    plain: Option<TcpListener>,
    admin: TcpListener,
    admin_addr: SocketAddr,
    /// The certificate's notAfter (seconds since the epoch).
    not_after: i64,
}

/// TLS for TCP and QUIC, then the public TCP and UDP ports, the plaintext port if any,
/// and the admin port.
async fn bind(cfg: &ServeConfig) -> Result<Sockets, ConfigError> {
    let tls_for = |alpn: &[&[u8]]| {
        tls::server_config(&cfg.tls_cert, &cfg.tls_key, cfg.client_ca.as_deref(), alpn)
    };
    let tcp_tls = tls_for(&[b"h2", b"http/1.1"])?;
    let quic_tls = tls_for(&[b"h3"])?;
    let not_after = tls::not_after(&cfg.tls_cert)?;
    let listener = bind_tcp(cfg.listen, "listen").await?;
    let local = listener
        .local_addr()
        .map_err(|e| ConfigError::flag("listen", e))?;
    let quic_cfg =
        quic::server_config(quic_tls, &cfg.limits).map_err(|e| ConfigError::flag("listen", e))?;
    let no_udp = |e: std::io::Error| {
        ConfigError::flag("listen", format!("cannot listen on UDP {local}: {e}"))
    };
    let (udp, granted) = crate::listen::udp::socket(local).map_err(no_udp)?;
    if granted.less_than_asked() {
        tracing::warn!(
            receive = granted.receive,
            send = granted.send,
            asked = crate::listen::udp::BUFFER,
            "HTTP/3's UDP buffers are smaller than asked: bursts may be dropped; raise net.core.rmem_max and net.core.wmem_max"
        );
    } else {
        tracing::info!(
            receive = granted.receive,
            send = granted.send,
            "HTTP/3 UDP buffers"
        );
    }
    let runtime = quinn::default_runtime()
        .ok_or_else(|| no_udp(std::io::Error::other("no async runtime for QUIC")))?;
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(quic_cfg),
        udp,
        runtime,
    )
    .map_err(no_udp)?;
    let plain = match cfg.plain_listen {
        Some(a) => Some(bind_tcp(a, "plain-listen").await?),
        None => None,
    };
    let admin = bind_tcp(cfg.admin_listen, "admin-listen").await?;
    let admin_addr = admin
        .local_addr()
        .map_err(|e| ConfigError::flag("admin-listen", e))?;
    Ok(Sockets {
        tcp_tls,
        listener,
        local,
        endpoint,
        plain,
        admin,
        admin_addr,
        not_after,
    })
}

/// What runs, for the announcement and the shutdown.
struct Running {
    tasks: Vec<(Task, tokio::task::JoinHandle<()>)>,
    tcp_caps: Arc<ConnCaps>,
    endpoint: quinn::Endpoint,
    local: SocketAddr,
    plain_addr: Option<SocketAddr>,
    admin_addr: SocketAddr,
}

/// Starts the feed (and the quick start's heartbeats) and every listener.
fn start_tasks(
    cfg: &ServeConfig,
    app: &Arc<App>,
    root: Option<RootKey>,
    sockets: Sockets,
    dev_setup: Option<&DevSetup>,
    stop_rx: &watch::Receiver<bool>,
) -> Result<Running, ConfigError> {
    let limits = &app.limits;
    let local = sockets.local;
    // One set of caps for TCP (TLS and plaintext together), one for QUIC, one for admin.
    let caps = || ConnCaps::new(limits.max_connections, limits.max_connections_per_ip);
    let (tcp_caps, quic_caps, admin_caps) = (caps(), caps(), caps());
    let settings = tcp::TcpSettings {
        limits: limits.clone(),
        alt_svc: HeaderValue::from_str(&format!("h3=\":{}\"; ma=86400", local.port())).ok(),
    };
    let mut tasks: Vec<(Task, tokio::task::JoinHandle<()>)> = Vec::new();
    if let Some(dev) = dev_setup.filter(|d| cfg.feed == FeedSource::File(d.feed())) {
        let every = (cfg.stale_after / 3).max(Duration::from_secs(1));
        let beat = DevSetup::heartbeats(dev.feed(), dev.read_feed_key()?, every, stop_rx.clone());
        tasks.push((Task::Background, tokio::spawn(beat)));
    }
    let plan = crate::feed::FeedPlan {
        source: cfg.feed.clone(),
        nats: cfg.nats.clone(),
        state_dir: cfg.state_dir.clone(),
        snapshot_every: cfg.snapshot_every,
    };
    let feed = crate::feed::run(plan, app.clone(), root, stop_rx.clone());
    tasks.push((Task::Feed, tokio::spawn(feed)));
    let tls_acceptor = Some(tokio_rustls::TlsAcceptor::from(sockets.tcp_tls));
    let serve_tls = tcp::serve(
        sockets.listener,
        tls_acceptor,
        app.clone(),
        settings.clone(),
        tcp_caps.clone(),
        stop_rx.clone(),
    );
    tasks.push((Task::Listener, tokio::spawn(serve_tls)));
    let plain_addr = sockets.plain.as_ref().and_then(|l| l.local_addr().ok());
    if let Some(p) = sockets.plain {
        let s = tcp::TcpSettings {
            alt_svc: None,
            ..settings
        };
        let serve_plain = tcp::serve(p, None, app.clone(), s, tcp_caps.clone(), stop_rx.clone());
        tasks.push((Task::Listener, tokio::spawn(serve_plain)));
    }
    let endpoint = sockets.endpoint;
    let serve_quic = quic::serve(endpoint.clone(), app.clone(), quic_caps, stop_rx.clone());
    tasks.push((Task::Listener, tokio::spawn(serve_quic)));
    let serve_admin = tcp::serve_admin(sockets.admin, app.clone(), admin_caps, stop_rx.clone());
    tasks.push((Task::Background, tokio::spawn(serve_admin)));
    crate::rollout::gauges(&app.verifier.rules());
    tasks.push((
        Task::Background,
        tokio::spawn(crate::rollout::run(app.clone())),
    ));
    Ok(Running {
        tasks,
        tcp_caps,
        endpoint,
        local,
        plain_addr,
        admin_addr: sockets.admin_addr,
    })
}

/// One machine-readable line for scripts and tests, then the human hints.
fn announce(
    cfg: &ServeConfig,
    r: &Running,
    dev_setup: Option<&DevSetup>,
) -> Result<(), ConfigError> {
    println!(
        "{}",
        serde_json::json!({
            "event": "listening", "listen": r.local.to_string(), "admin": r.admin_addr.to_string(),
            "plain": r.plain_addr.map(|a| a.to_string()), "dev": cfg.dev,
        })
    );
    tracing::info!(local = %r.local, admin = %r.admin_addr, "gateway listening (TLS HTTP/1.1 + HTTP/2 on TCP, HTTP/3 on UDP)");
    match dev_setup {
        Some(dev) => print_quick_start(dev, r.local, r.admin_addr),
        None => Ok(()),
    }
}

/// Stops accepting, drains in-flight requests within `--shutdown-grace`, closes QUIC
/// connections with H3_NO_ERROR, and lets the feed write its last snapshot.
async fn shut_down(cfg: &ServeConfig, app: &App, running: Running, stop_tx: watch::Sender<bool>) {
    tracing::info!(
        grace_s = cfg.shutdown_grace.as_secs(),
        "shutting down: finishing in-flight requests"
    );
    let _ = stop_tx.send(true);
    // The accept loops return at once on `stop`; every open connection has been told to
    // shut down gracefully and is waited for.
    let (listeners, others): (Vec<_>, Vec<_>) = running
        .tasks
        .into_iter()
        .partition(|(kind, _)| *kind == Task::Listener);
    for (_, t) in listeners {
        let _ = t.await;
    }
    let drained = tokio::time::timeout(cfg.shutdown_grace, async {
        running.tcp_caps.all_closed().await;
        // Every protocol's in-flight requests (HTTP/3 included) hold a slot.
        app.in_flight.all_free().await;
    })
    .await;
    // Then close QUIC connections with an application code (H3_NO_ERROR).
    let endpoint = running.endpoint;
    endpoint.close(quic::CLOSE_CODE.into(), b"shutting down");
    // Let the CONNECTION_CLOSE frames leave before the process does.
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    for (kind, t) in others {
        if kind == Task::Feed {
            // The last snapshot: bounded, so a stuck disk cannot hold the exit forever.
            if tokio::time::timeout(FEED_STOP_LIMIT, t).await.is_err() {
                tracing::error!("feed did not stop in time; exiting without a last snapshot");
            }
        } else {
            t.abort();
        }
    }
    match drained {
        Ok(()) => tracing::info!("drained"),
        Err(_) => tracing::warn!("shutdown deadline passed with requests still in flight"),
    }
}

/// Raises the soft limit on open descriptors to the hard limit (connections are capped
/// below it by `--max-connections`), and logs the figure.
fn raise_nofile_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::info!(limit = n, "open-descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-descriptor limit"),
    }
}

fn print_quick_start(
    dev: &DevSetup,
    local: SocketAddr,
    admin: SocketAddr,
) -> Result<(), ConfigError> {
    let key = dev.read_api_key()?;
    let code = crate::issue::mint(&crate::issue::MintArgs {
        subject: crate::issue::SubjectArgs {
            sub: None,
            card_kind: Some("id_card".into()),
            number: Some("33010619800101001X".into()),
            pseudonym_key: Some(dev.pseudonym_key()),
        },
        color: crate::issue::ColorArg::Green,
        ver: 1,
        why: None,
        kind: None,
        validity: 3600,
        companions: vec![],
        issuer: crate::issue::IssuerArgs::default(),
        state_dir: dev.dir.clone(),
        // The quick start's list (`DevSetup::publish_offline`): its codes carry their place.
        status_list_uri: Some(DevSetup::STATUS_LIST_URI.into()),
        status_list_size: DevSetup::STATUS_LIST_SIZE as u32,
    })?;
    let host = if local.ip().is_loopback() || local.ip().is_unspecified() {
        format!("localhost:{}", local.port())
    } else {
        local.to_string()
    };
    let cert = dev.cert();
    eprintln!(
        "\nReady. Verify a freshly minted code (HTTP/2; use --http1.1 for HTTP/1.1):\n\n  \
         curl --http2 --cacert {} -H 'Authorization: Bearer {key}' -H 'Content-Type: text/plain' \\\n    \
         --data '{code}' 'https://{host}/v1/verify?venue=bus'\n\n\
         Mint more:   gateway mint --state-dir {} --card-kind id_card --number - --color yellow   (the number on stdin)\n\
         Turn red:    gateway feed --state-dir {} status --card-kind id_card --number @FILE --color red --ver 2   (the number in FILE)\n\
         Status:      curl http://{admin}/v1/status\n\n\
         Try a gate offline: fetch the signed bundle once, then decide with no network:\n\n  \
         validator sync --from https://{host} --api-key-file {} --root-key {} --ca {} --dir gate\n  \
         validator check --dir gate --venue bus '{code}'\n\n\
         (`cargo run --release -p validator --` in place of `validator` from a checkout.)\n",
        cert.display(),
        dev.dir.display(),
        dev.dir.display(),
        dev.api_key().display(),
        dev.root_pub().display(),
        cert.display(),
    );
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    let _ = Duration::ZERO;
}
