//! The issuing side, through the binary only: a root key, an ES256 issuer key, a signed
//! policy and trust list made with `gateway root-keygen`, `keygen` and `sign`; codes
//! minted with `gateway mint`; a key revoked with a signed feed event.

use crate::support::client::Protocol;
use crate::support::{eventually, run_cli, Gateway, Options};

fn cli_out(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn keys_policy_and_codes_made_with_the_cli_are_accepted() {
    let gw = Gateway::start(Options {
        prepare: Some(Box::new(|setup| {
            let d = setup.dir.clone();
            let p = |n: &str| d.join(n).display().to_string();
            // Replace the development root, issuer and policy with CLI-made ones.
            for f in ["root.seed", "root.pub"] {
                std::fs::remove_file(d.join(f)).unwrap();
            }
            cli_out(&["root-keygen", "--out", &p("root.seed")]);
            std::fs::rename(d.join("root.seed.pub"), setup.root_pub()).unwrap();
            let entry = cli_out(&[
                "keygen",
                "--alg",
                "ES256",
                "--kid",
                "hz-es-1",
                "--issuer",
                "CN-33",
                "--out",
                &p("es.key"),
            ]);
            std::fs::write(d.join("entry.json"), &entry).unwrap();
            let trust = format!("{{\"keys\": [{entry}]}}");
            std::fs::write(setup.trust(), trust).unwrap();
            std::fs::write(
                d.join("policy.json"),
                gateway_core::policy::reference_policy_json(5),
            )
            .unwrap();
            let signed = cli_out(&[
                "sign",
                "--root-seed",
                &p("root.seed"),
                "policy",
                &p("policy.json"),
            ]);
            std::fs::write(setup.policy(), signed).unwrap();
        })),
        ..Options::default()
    })
    .await;
    let d = gw.setup.dir.display().to_string();
    let key = gw.setup.dir.join("es.key").display().to_string();
    let code = cli_out(&[
        "mint",
        "--state-dir",
        &d,
        "--issuer-key",
        &key,
        "--kid",
        "hz-es-1",
        "--iss",
        "CN-33",
        "--sub",
        "AAAAAAAAAAAAAAAAAAAAAA",
        "--color",
        "yellow",
    ]);
    let mut c = gw.client(Protocol::H2).await;
    let body = serde_json::json!({"code": code, "venue": "bus"}).to_string();
    let v = c.post("/v1/verify", &gw.api_key, body.clone()).await.json();
    assert_eq!(
        (v["decision"].as_str(), v["policy_version"].as_u64()),
        (Some("allow"), Some(5))
    );
    // Revoke the key with a signed event from the CLI.
    let root_seed = gw.setup.dir.join("root.seed").display().to_string();
    let kid = gateway_core::b64::encode(b"hz-es-1");
    let event = cli_out(&["sign", "--root-seed", &root_seed, "key-revoke", &kid]);
    gw.append_feed(&format!("{event}\n"));
    let v = eventually("key_revoked", || {
        let (gw, body) = (&gw, body.clone());
        async move {
            let v = gw
                .client(Protocol::H1)
                .await
                .post("/v1/verify", &gw.api_key, body)
                .await
                .json();
            (v["reason"] == "key_revoked").then_some(v)
        }
    })
    .await;
    assert!(v["color"].is_null());
    // Signing refuses a policy the gateway would refuse.
    std::fs::write(
        gw.setup.dir.join("bad.json"),
        "{\"version\": 9, \"venues\": {}}",
    )
    .unwrap();
    let (rc, err) = run_cli(&[
        "sign",
        "--root-seed",
        &root_seed,
        "policy",
        &gw.setup.dir.join("bad.json").display().to_string(),
    ]);
    assert_ne!(rc, 0);
    assert!(err.contains("bad.json"), "{err}");
}
