//! Owner-only files (cli.md revision 3): everything the gateway and the issuing commands
//! write that holds a secret or personal data is created 0600 (directories 0700), and
//! `serve` refuses a secret key file that group or others may read.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::{run_cli, Gateway, Options, TempDir};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

/// Every file and directory under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Runs the color rules on one fact about an identity number (`gateway publish
/// --facts`): personal data in the registry and a status in the feed.
fn publish_card_fact(state: &Path) {
    let facts = state.join("facts.jsonl");
    gateway_issuer::owner_only::write(
        &facts,
        b"{\"card_kind\":\"id_card\",\"number\":\"33010619800101001X\",\"fact\":\"close_contact\"}\n",
    )
    .unwrap();
    let s = state.display().to_string();
    cli_ok(&[
        "publish",
        "--state-dir",
        &s,
        "--facts",
        &facts.display().to_string(),
    ]);
    std::fs::remove_file(&facts).unwrap();
}

fn cli_ok(args: &[&str]) {
    let (rc, err) = run_cli(args);
    assert_eq!(rc, 0, "{args:?}: {err}");
}

#[tokio::test]
async fn everything_the_gateway_and_the_issuing_side_write_is_owner_only() {
    // The trust list and root key are public (cli.md): world-readable ones are accepted.
    let public = |setup: &gateway_issuer::DevSetup| [setup.trust(), setup.root_pub()];
    let gw = Gateway::start(Options {
        prepare: Some(Box::new(move |setup| {
            for f in public(setup) {
                std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
        })),
        ..Options::default()
    })
    .await;
    let state = gw.setup.dir.clone();
    let exempt = public(&gw.setup);
    let s = state.display().to_string();
    // Personal data: the rules' registry (from facts with an identity number) and feed
    // events; key files from both key generators.
    publish_card_fact(&state);
    cli_ok(&["feed", "--state-dir", &s, "heartbeat"]);
    let keys = state.join("keys");
    gateway_issuer::owner_only::dir(&keys).unwrap();
    let p = |n: &str| keys.join(n).display().to_string();
    cli_ok(&["root-keygen", "--out", &p("root.seed")]);
    cli_ok(&["nats-keygen", "--out", &p("gateway.nk")]);
    cli_ok(&[
        "keygen",
        "--alg",
        "EdDSA",
        "--kid",
        "k-1",
        "--issuer",
        "CN-33",
        "--out",
        &p("ed.key"),
    ]);
    cli_ok(&[
        "keygen",
        "--alg",
        "ES256",
        "--kid",
        "k-2",
        "--issuer",
        "CN-33",
        "--out",
        &p("es.key"),
    ]);
    // A snapshot (every pseudonym's status) is written at shutdown, once both events are in.
    gw.wait_stat("feed_seq", 2).await;
    let mut gw = gw;
    gw.terminate();
    gw.wait_exit().await;
    let all = walk(&state);
    for kind in [
        "registry.json",
        "snapshot",
        "feed.jsonl",
        "feed.key",
        "pseudonym.key",
        "root.seed",
        "ed.key",
        "es.key",
        "gateway.nk",
        "key.pem",
        "api.key",
        "issuer.seed",
    ] {
        assert!(
            all.iter().any(|f| f
                .file_name()
                .is_some_and(|n| n.to_string_lossy().contains(kind))),
            "no {kind} under the state directory: {all:?}"
        );
    }
    for f in all.iter().filter(|f| !exempt.contains(f)) {
        let want = if f.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(f), want, "{} is {:03o}", f.display(), mode(f));
    }
}

#[test]
fn serve_refuses_secret_key_files_others_may_read() {
    let dir = TempDir::new("loose");
    let setup = gateway_issuer::DevSetup::new(&dir.0.join("state"));
    setup.ensure().expect("setup");
    let arg = |p: PathBuf| p.display().to_string();
    let named = [
        ("--trust", arg(setup.trust())),
        ("--root-key", arg(setup.root_pub())),
        ("--policy", arg(setup.policy())),
        ("--callers", arg(setup.callers())),
        ("--tls-cert", arg(setup.cert())),
        ("--state-dir", arg(setup.dir.clone())),
        ("--feed", format!("file:{}", setup.feed().display())),
        ("--listen", "127.0.0.1:0".into()),
        ("--admin-listen", "127.0.0.1:0".into()),
    ];
    // The broker's credentials are secrets too.
    let nkey = dir.0.join("gateway.nk");
    cli_ok(&["nats-keygen", "--out", &arg(nkey.clone())]);
    let token = dir.0.join("nats.token");
    gateway_issuer::owner_only::write_new(&token, b"a-broker-token\n").unwrap();
    for (file, flag) in [
        (setup.key(), "--tls-key"),
        (setup.pseudonym_key(), "--pseudonym-key"),
        (setup.feed_key(), "--feed-key"),
        (nkey.clone(), "--nats-nkey"),
        (token, "--nats-token-file"),
    ] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let f = file.display().to_string();
        let mut args = vec!["serve"];
        for (k, v) in &named {
            args.extend([*k, v.as_str()]);
        }
        // The other secret files, owner-only, so that only this one is at fault.
        let key = arg(setup.key());
        if flag != "--tls-key" {
            args.extend(["--tls-key", key.as_str()]);
        }
        args.extend([flag, f.as_str()]);
        let (rc, err) = run_cli(&args);
        assert_ne!(rc, 0, "{flag}");
        assert!(
            err.contains(&f) && err.contains("owner only"),
            "{flag}: {err}"
        );
        assert_eq!(
            err.lines().filter(|l| l.starts_with("gateway:")).count(),
            1,
            "one line: {err}"
        );
        gateway_issuer::owner_only::narrow(&file).unwrap();
    }
    // An owner-only file that is not an NKey seed: refused, naming it.
    let junk = dir.0.join("junk.nk");
    gateway_issuer::owner_only::write_new(&junk, b"SUnot-a-seed\n").unwrap();
    let mut args = vec!["serve"];
    for (k, v) in &named {
        args.extend([*k, v.as_str()]);
    }
    let (key, junk) = (arg(setup.key()), arg(junk));
    args.extend(["--tls-key", key.as_str(), "--nats-nkey", junk.as_str()]);
    let (rc, err) = run_cli(&args);
    assert_ne!(rc, 0);
    assert!(err.contains(&junk) && err.contains("NKey seed"), "{err}");
}

/// Every file under `dir` whose bytes contain `needle`.
fn holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .filter(|p| {
            std::fs::read(p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        })
        .collect()
}

#[tokio::test]
async fn purge_leaves_nothing_personal_behind() {
    let mut gw = Gateway::start(Options::default()).await;
    let state = gw.setup.dir.clone();
    let s = state.display().to_string();
    // Personal data in every place it lands: a status through the feed, the registry of
    // the color rules (from an identity number), and the snapshot written at shutdown.
    let sub = gateway_core::Sub([0x77; 16]);
    let sub_b64 = gateway_core::b64::encode(&sub.0);
    cli_ok(&[
        "feed",
        "--state-dir",
        &s,
        "status",
        "--sub",
        &sub_b64,
        "--color",
        "red",
        "--ver",
        "3",
    ]);
    publish_card_fact(&state);
    gw.wait_stat("feed_seq", 2).await;
    gw.terminate();
    assert!(gw.wait_exit().await.success());
    let carded = {
        let key = gateway_issuer::keys::read_pseudonym_key(&gw.setup.pseudonym_key()).unwrap();
        key.pseudonym(
            gateway_core::pseudonym::CardKind::IdCard,
            "33010619800101001X",
        )
    };
    let carded_b64 = gateway_core::b64::encode(&carded.0);
    for needle in [
        &sub.0[..],
        sub_b64.as_bytes(),
        &carded.0[..],
        carded_b64.as_bytes(),
    ] {
        assert!(
            !holding(&state, needle).is_empty(),
            "the data is there before"
        );
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["purge", "--state-dir", &s])
        .output()
        .unwrap();
    assert!(out.status.success());
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    for what in ["snapshots", "feed.jsonl", "registry.json"] {
        assert!(report.contains(what), "{what} not in the report: {report}");
    }
    for needle in [
        &sub.0[..],
        sub_b64.as_bytes(),
        &carded.0[..],
        carded_b64.as_bytes(),
    ] {
        assert_eq!(
            holding(&state, needle),
            Vec::<PathBuf>::new(),
            "left behind"
        );
    }
    // The keys stay until asked for (the runbook destroys them last).
    assert!(gw.setup.pseudonym_key().exists());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["purge", "--state-dir", &s, "--keys"])
        .output()
        .unwrap();
    assert!(out.status.success());
    for f in [
        gw.setup.pseudonym_key(),
        gw.setup.feed_key(),
        gw.setup.root_seed(),
        gw.setup.key(),
    ] {
        assert!(!f.exists(), "{} kept", f.display());
    }
}

/// `cli.md` revision 4: a purge never follows a symbolic link. A link planted where the
/// registry should be, and a `snapshots` folder that is a link to another folder, are
/// removed, their targets untouched, and the report says so.
#[test]
fn purge_never_follows_a_link() {
    let dir = TempDir::new("purge-links");
    let state = dir.0.join("state");
    let outside = dir.0.join("outside");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(outside.join("folder")).unwrap();
    let victim = outside.join("victim.txt");
    let kept = outside.join("folder").join("snapshot-1.bin");
    std::fs::write(&victim, b"someone else's file").unwrap();
    std::fs::write(&kept, b"not a snapshot of ours").unwrap();
    std::os::unix::fs::symlink(&victim, state.join("registry.json")).unwrap();
    std::os::unix::fs::symlink(&victim, state.join("feed.jsonl")).unwrap();
    std::os::unix::fs::symlink(outside.join("folder"), state.join("snapshots")).unwrap();
    let s = state.display().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["purge", "--state-dir", &s])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{report}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"someone else's file");
    assert_eq!(std::fs::read(&kept).unwrap(), b"not a snapshot of ours");
    for link in ["registry.json", "feed.jsonl", "snapshots"] {
        assert!(
            std::fs::symlink_metadata(state.join(link)).is_err(),
            "{link} left"
        );
        assert!(
            report
                .lines()
                .any(|l| l.contains(link) && l.contains("symbolic link, not followed")),
            "{link} not reported: {report}"
        );
    }
}
