//! Configuration errors, the files in config/, and shutdown.

use std::time::Duration;

use gateway_core::{Color, Sub};
use http_body_util::BodyExt;

use crate::support::client::{Client, Protocol};
use crate::support::{run_cli, Gateway, Options, TempDir};

#[test]
fn fatal_configuration_errors_exit_at_once_with_one_line() {
    let dir = TempDir::new("cfg");
    let missing = dir.0.join("missing.json");
    let m = missing.display().to_string();
    let quick = dir.0.join("quick").display().to_string();
    for (args, needle) in [
        // The quick start's own keys are trusted by no one else: loopback only.
        (
            vec![
                "serve",
                "--state-dir",
                quick.as_str(),
                "--listen",
                "0.0.0.0:0",
            ],
            "not a loopback address",
        ),
        (
            vec![
                "serve",
                "--state-dir",
                quick.as_str(),
                "--plain-listen",
                "[::]:0",
            ],
            "--plain-listen",
        ),
        (vec!["serve", "--trust", m.as_str()], "--root-key"),
        (
            vec![
                "serve",
                "--trust",
                &m,
                "--root-key",
                &m,
                "--policy",
                &m,
                "--callers",
                &m,
                "--tls-cert",
                &m,
                "--tls-key",
                &m,
            ],
            "missing.json",
        ),
        (vec!["serve", "--feed", "kafka://x"], "--feed"),
        (vec!["serve", "--max-validity", "0"], "--max-validity"),
    ] {
        let (code, err) = run_cli(&args);
        assert_ne!(code, 0, "{args:?}");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("gateway:")).collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(lines[0].contains(needle), "{args:?}: {err}");
    }
    let bad_toml = dir.0.join("bad.toml");
    std::fs::write(&bad_toml, "listen = \"127.0.0.1:1\"\nno_such_key = 1\n").unwrap();
    let (code, err) = run_cli(&["serve", "--config", &bad_toml.display().to_string()]);
    assert_ne!(code, 0);
    assert!(
        err.contains("bad.toml") && err.contains("no_such_key"),
        "{err}"
    );
}

/// Every file under `dir` (recursively) whose name ends with `ext`.
fn files_with(dir: &std::path::Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_with(&p, ext));
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
    out
}

#[test]
fn every_gateway_config_in_config_and_deploy_parses() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut n = 0;
    for dir in ["config", "deploy"] {
        for p in files_with(&root.join(dir), "toml") {
            let text = std::fs::read_to_string(&p).unwrap();
            let args = toml::from_str::<gateway::config::ServeArgs>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            args.resolve()
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert!(n >= 3);
}

/// Every limit flag is in the example configuration (under `[limits]`) and in the
/// README's table, with its default.
#[test]
fn every_limit_is_documented_in_the_example_and_the_readme() {
    use clap::Args;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let example = std::fs::read_to_string(root.join("config/gateway.example.toml")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let limits = example.split("[limits]").nth(1).expect("a [limits] table");
    let cmd = gateway::limits::LimitArgs::augment_args(clap::Command::new("limits"));
    let mut n = 0;
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        assert!(
            limits.contains(&format!("{id} =")),
            "{id} missing from [limits] in config/gateway.example.toml"
        );
        let flag = format!("| `--{}` |", id.replace('_', "-"));
        assert!(
            readme.contains(&flag),
            "{flag} missing from the README's limits table"
        );
        n += 1;
    }
    assert!(n >= 18, "{n}");
}

/// The NATS server configurations in deploy/ pass the server's own check (copied with
/// loopback ports and test certificates, as the broker test runs them).
#[test]
fn every_nats_config_in_deploy_passes_nats_server_check() {
    use crate::support::nats::{deploy_dir, deploy_files, localized_configs};
    if !crate::support::nats::available() {
        return;
    }
    let dir = deploy_dir();
    let tmp = crate::support::TempDir::new("nats-check");
    let files = deploy_files(&tmp.0);
    let mut copies = localized_configs(&files);
    copies.push(("users.conf".into(), tmp.0.join("users.conf"), 0));
    let mut names: Vec<String> = copies.iter().map(|c| c.0.clone()).collect();
    names.sort();
    let mut all: Vec<String> = files_with(&dir, "conf")
        .iter()
        .filter_map(|p| Some(p.file_name()?.to_str()?.to_owned()))
        .collect();
    all.sort();
    assert_eq!(names, all, "every .conf in deploy/nats is checked");
    for (name, copy, _) in copies {
        let out = std::process::Command::new("nats-server")
            .args(["-t", "-c"])
            .arg(&copy)
            .envs(files.env())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mirror: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("edge-mirror-stream.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(mirror["mirror"]["name"], "JKM");
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests() {
    let mut gw = Gateway::start(Options::default()).await;
    let code = gw.mint(Sub([5; 16]), Color::Green, 1);
    let c = gw.client(Protocol::H2).await;
    let (resp, tx) = c.open_stream("/v1/verify/stream", &gw.api_key).await;
    assert!(
        tx.send(serde_json::json!({"code": code, "venue": "bus"}))
            .await
    );
    let resp = tokio::time::timeout(Duration::from_secs(30), resp)
        .await
        .unwrap()
        .unwrap();
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(30), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(first.data_ref().unwrap()).contains("allow"));
    // A request is in flight: SIGTERM, then it still completes.
    gw.terminate();
    // New connections are refused once the listener is closed.
    let listen = gw.listen;
    crate::support::eventually("listener closed", || async move {
        tokio::net::TcpStream::connect(listen)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    assert!(
        tx.send(serde_json::json!({"code": code, "venue": "metro"}))
            .await
    );
    drop(tx);
    let rest = tokio::time::timeout(Duration::from_secs(30), body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert!(String::from_utf8_lossy(&rest).contains("allow"), "{rest:?}");
    assert!(gw.wait_exit().await.success());
}

/// The README's first command: `gateway serve` with no key files makes a development
/// setup, prints a ready-to-paste curl command, and that command's code verifies. The
/// issuing subcommands then mint a code and turn its holder red through the feed.
#[tokio::test]
async fn quick_start_prints_a_working_verification() {
    use std::io::{BufRead, BufReader};
    let dir = TempDir::new("quick");
    let state = dir.0.join("state");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args([
            "serve",
            "--state-dir",
            &state.display().to_string(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (listening, curl) = tokio::task::spawn_blocking(move || {
        let listening = BufReader::new(stdout).lines().next().unwrap().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let mut curl = String::new();
        for l in lines.by_ref() {
            let l = l.unwrap();
            if l.trim_start().starts_with("curl ") {
                curl = l;
                curl.push_str(&lines.next().unwrap().unwrap());
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        (listening, curl)
    })
    .await
    .unwrap();
    let guard = KillOnDrop(child);
    let v: serde_json::Value = serde_json::from_str(&listening).unwrap();
    let listen: std::net::SocketAddr = v["listen"].as_str().unwrap().parse().unwrap();
    // It says it runs on its own keys, with an authenticated feed.
    let admin: std::net::SocketAddr = v["admin"].as_str().unwrap().parse().unwrap();
    let ready = crate::support::client::get_plain(admin, "/readyz")
        .await
        .unwrap()
        .json();
    assert_eq!(
        (ready["quick_start"].clone(), ready["feed_auth"].clone()),
        (true.into(), true.into())
    );
    // Pull the key and the code out of the printed command.
    let key = curl
        .split("Bearer ")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_owned();
    let code = curl
        .split("--data '")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_owned();
    assert!(code.starts_with("JKM1:"), "{curl}");
    let pem = std::fs::read(state.join("tls/cert.pem")).unwrap();
    let ca = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .unwrap()
        .unwrap();
    let mut c = Client::connect(Protocol::H2, listen, &ca).await;
    let auth = format!("Bearer {key}");
    assert_eq!(
        send_text(&mut c, &auth, code.clone()).await["decision"],
        "allow"
    );
    // The holder turns red through the issuing-side feed command (the number from a
    // file, so it is in neither the process list nor the shell's history).
    let s = state.display().to_string();
    let number_file = state.join("number.txt");
    std::fs::write(&number_file, "33010619800101001X\n").unwrap();
    let at_file = format!("@{}", number_file.display());
    let (rc, err) = run_cli(&[
        "feed",
        "--state-dir",
        &s,
        "status",
        "--card-kind",
        "id_card",
        "--number",
        &at_file,
        "--color",
        "red",
        "--ver",
        "2",
    ]);
    assert_eq!(rc, 0, "{err}");
    let mut denied = false;
    for _ in 0..1500 {
        if send_text(&mut c, &auth, code.clone()).await["decision"] == "deny" {
            denied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(denied, "the red status reached the gateway");
    // A code minted by the CLI for another subject is allowed (the number on stdin).
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args([
            "mint",
            "--state-dir",
            &s,
            "--card-kind",
            "passport",
            "--number",
            "-",
            "--color",
            "yellow",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"E12345678\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let minted = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let v = send_text(&mut c, &auth, minted).await;
    assert_eq!(
        (v["decision"].as_str(), v["color"].as_str()),
        (Some("allow"), Some("yellow"))
    );
    drop(guard);
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn send_text(c: &mut Client, auth: &str, code: String) -> serde_json::Value {
    let headers = [("authorization", auth), ("content-type", "text/plain")];
    c.send(http::Method::POST, "/v1/verify?venue=bus", &headers, code)
        .await
        .json()
}

#[tokio::test]
async fn logs_are_json_lines_on_request() {
    use std::io::{BufRead, BufReader};
    let dir = TempDir::new("logjson");
    let state = dir.0.join("state").display().to_string();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args([
            "serve",
            "--log-json",
            "--state-dir",
            &state,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with('{'))
    })
    .await
    .unwrap();
    let _guard = KillOnDrop(child);
    let v: serde_json::Value = serde_json::from_str(&line.expect("a JSON log line")).unwrap();
    assert!(
        v["level"].is_string() && v["fields"]["message"].is_string(),
        "{v}"
    );
}

/// The declared `rust-version` is true of the whole build: no package built for this host
/// (normal, build and dev dependencies, from the real lock file) asks for a newer Rust.
/// With clippy's `msrv` (clippy.toml, the same version), which refuses standard-library
/// APIs newer than it, this stands in for building with that toolchain, which this machine
/// cannot fetch.
#[test]
fn the_declared_rust_version_covers_every_dependency() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let declared = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim().trim_matches('"').to_string())
        .expect("rust-version in the workspace");
    let clippy = std::fs::read_to_string(root.join("clippy.toml")).unwrap();
    assert!(
        clippy.contains(&format!("msrv = \"{declared}\"")),
        "clippy.toml's msrv is not {declared}"
    );
    let packages = host_packages(&root);
    let version = |v: &str| -> Vec<u64> {
        let mut p: Vec<u64> = v.split('.').map(|x| x.parse().unwrap_or(0)).collect();
        p.resize(3, 0);
        p
    };
    let max = version(&declared);
    let newer: Vec<String> = packages
        .iter()
        .filter_map(|p| {
            let rv = p["rust_version"].as_str()?;
            (version(rv) > max).then(|| format!("{} {} needs {rv}", p["name"], p["version"]))
        })
        .collect();
    assert!(
        newer.is_empty(),
        "rust-version {declared} is older than what these need: {newer:?}"
    );
}

/// Licences, sources and duplicate versions of every package built for this host, from
/// the real lock file: what `cargo deny`'s licences, sources and bans checks would say,
/// run without fetching anything (this machine reaches crates.io but not the advisory
/// database, so advisories are not checked here).
#[test]
fn dependencies_have_permissive_licences_known_sources_and_no_new_duplicates() {
    // Permissive licences only (SPDX ids as the crates write them).
    const ALLOWED: &[&str] = &[
        "MIT",
        "Apache-2.0",
        "BSD-2-Clause",
        "BSD-3-Clause",
        "ISC",
        "Zlib",
        "Unicode-3.0",
        "Unlicense",
        "0BSD",
        "MIT-0",
        "BSL-1.0",
        "CC0-1.0",
    ];
    // Licence exceptions that only add permissions.
    const EXCEPTIONS: &[&str] = &["LLVM-exception"];
    // Crates present in two or more versions, each pulled by different dependencies
    // (rand 0.8 by ed25519-dalek's batch verification, 0.9 and 0.10 by quinn and others;
    // hashbrown by quick_cache, metrics and ours; syn 3 by newer derive macros; untrusted
    // 0.7 by aws-lc-rs, 0.9 by ring; …). A new
    // name here is a decision, not an accident: add it with a reason.
    const KNOWN_DUPLICATES: &[&str] = &[
        "base64",
        "bit-vec",
        "bitflags",
        "cpufeatures",
        "foldhash",
        "getrandom",
        "hashbrown",
        "miniz_oxide",
        "rand",
        "rand_chacha",
        "rand_core",
        "syn",
        "synstructure",
        "untrusted",
        "winnow",
    ];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let packages = host_packages(&root);
    let mut versions: std::collections::BTreeMap<&str, usize> = Default::default();
    for p in &packages {
        let name = p["name"].as_str().unwrap();
        *versions.entry(name).or_default() += 1;
        match p["source"].as_str() {
            None => assert!(
                p["manifest_path"]
                    .as_str()
                    .unwrap()
                    .starts_with(root.canonicalize().unwrap().to_str().unwrap()),
                "{name}: a path dependency outside the workspace"
            ),
            Some(s) => assert_eq!(
                s, "registry+https://github.com/rust-lang/crates.io-index",
                "{name}: not from crates.io"
            ),
        }
        let licence = p["license"].as_str().unwrap_or_default();
        // "X WITH E": E is an exception that grants more (LLVM's lets binaries leave out
        // the licence notice); it must be a known one, and X is checked as usual.
        let mut ids: Vec<&str> = Vec::new();
        let mut tokens = licence
            .split(|c: char| c == '(' || c == ')' || c == '/' || c.is_whitespace())
            .filter(|t| !t.is_empty() && *t != "OR" && *t != "AND");
        while let Some(t) = tokens.next() {
            if t == "WITH" {
                let exception = tokens.next().unwrap_or_default();
                assert!(
                    EXCEPTIONS.contains(&exception),
                    "{name}: licence exception {exception:?}"
                );
            } else {
                ids.push(t);
            }
        }
        assert!(
            !ids.is_empty() && ids.iter().all(|id| ALLOWED.contains(id)),
            "{name} {}: licence {licence:?}",
            p["version"]
        );
    }
    let duplicated: Vec<&str> = versions
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(name, _)| *name)
        .collect();
    let new: Vec<&&str> = duplicated
        .iter()
        .filter(|d| !KNOWN_DUPLICATES.contains(d))
        .collect();
    assert!(new.is_empty(), "new duplicate versions: {new:?}");
}

/// Every package built for this host (normal, build and dev dependencies and the
/// workspace's own), from `cargo metadata` on the real lock file, offline.
fn host_packages(root: &std::path::Path) -> Vec<serde_json::Value> {
    let rustc = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .unwrap();
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
        ])
        .arg(&host)
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let built: std::collections::BTreeSet<String> = m["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["id"].as_str().map(str::to_owned))
        .collect();
    let packages: Vec<serde_json::Value> = m["packages"]
        .as_array_mut()
        .map(std::mem::take)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| built.contains(id)))
        .collect();
    assert!(
        packages.len() > 100,
        "{} packages: metadata looks wrong",
        packages.len()
    );
    packages
}
