//! The integrators' samples in docs/INTEGRATION.md run for real: the curl call (taken
//! from the document itself) and `docs/examples/verify.py`, against a real gateway,
//! with a code whose decision is known (and one whose text ends in a space, which both
//! must carry unchanged).

use std::path::{Path, PathBuf};
use std::process::Command;

use gateway_core::{Color, Sub};

use crate::support::{Gateway, Options, TempDir};

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

/// A green code and a red one, one of them ending in a space if such a code can be had
/// within a few hundred tries (about one code in 45 does).
fn codes(gw: &Gateway) -> Vec<(String, &'static str)> {
    let green = gw.mint(Sub([41; 16]), Color::Green, 0);
    let red = gw.mint(Sub([42; 16]), Color::Red, 0);
    let mut out = vec![(green, "allow"), (red, "deny")];
    if let Some(spaced) = (0..400u16)
        .map(|i| {
            let mut s = [43; 16];
            s[..2].copy_from_slice(&i.to_be_bytes());
            gw.mint(Sub(s), Color::Green, 0)
        })
        .find(|c| c.ends_with(' '))
    {
        out.push((spaced, "allow"));
    }
    out
}

fn files(gw: &Gateway, dir: &TempDir, code: &str) {
    std::fs::write(dir.0.join("code.txt"), format!("{code}\n")).unwrap();
    std::fs::write(dir.0.join("api.key"), &gw.api_key).unwrap();
    std::fs::copy(gw.setup.cert(), dir.0.join("ca.pem")).unwrap();
}

#[tokio::test]
async fn the_python_client_opens_for_allow_and_not_for_deny() {
    let gw = Gateway::start(Options::default()).await;
    let dir = TempDir::new("py");
    let url = format!("https://localhost:{}", gw.listen.port());
    for (code, want) in codes(&gw) {
        files(&gw, &dir, &code);
        let out = tokio::task::spawn_blocking({
            let (dir, url) = (dir.0.clone(), url.clone());
            move || {
                Command::new("python3")
                    .arg(docs().join("examples/verify.py"))
                    .args(["--url", &url, "--ca", "ca.pem", "--key-file", "api.key"])
                    .args(["--venue", "bus"])
                    .current_dir(&dir)
                    .stdin(std::fs::File::open(dir.join("code.txt")).unwrap())
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(v["status"], 200, "{v}");
        assert_eq!(v["decision"], want, "{v}");
        let exit = if want == "allow" { 0 } else { 1 };
        assert_eq!(out.status.code(), Some(exit));
    }
    // The gateway gone: exit 2, the gate's own fallback.
    let listen = gw.listen;
    drop(gw);
    crate::support::eventually("the gateway gone", || async {
        std::net::TcpStream::connect(listen).is_err().then_some(())
    })
    .await;
    let out = Command::new("python3")
        .arg(docs().join("examples/verify.py"))
        .args(["--url", &url, "--ca", "ca.pem", "--key-file", "api.key"])
        .args(["--venue", "bus"])
        .current_dir(&dir.0)
        .stdin(std::fs::File::open(dir.0.join("code.txt")).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn the_curl_call_of_the_document_gets_the_decision() {
    let doc = std::fs::read_to_string(docs().join("INTEGRATION.md")).unwrap();
    let call = doc
        .split("```sh\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a sh block in INTEGRATION.md");
    assert!(call.contains("curl") && call.contains("/v1/verify"));
    let gw = Gateway::start(Options::default()).await;
    let dir = TempDir::new("curl");
    let call = call.replace(
        "https://gateway:8443",
        &format!("https://localhost:{}", gw.listen.port()),
    );
    for (code, want) in codes(&gw) {
        files(&gw, &dir, &code);
        let out = tokio::task::spawn_blocking({
            let (dir, call) = (dir.0.clone(), call.clone());
            move || {
                Command::new("bash")
                    .args(["-c", &call])
                    .current_dir(&dir)
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: {} {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(v["decision"], want, "{v}");
    }
}
