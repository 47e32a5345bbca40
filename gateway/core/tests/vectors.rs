//! Every case of every JSON file in `spec/vectors/` (and in each directory of
//! `JKM_EXTRA_VECTORS`, colon-separated) runs through the core. A new file counts without
//! a code change; a case of a shape this runner does not know fails, naming the case.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};

use gateway_core::feed_event;
use gateway_core::pseudonym::{CardKind, PseudonymKey};
use gateway_core::trust::{RootKey, TrustList};
use gateway_core::{Decision, Judgement, Policy, Settings, Verifier};
use gateway_issuer::mint::RootSigner;
use serde_json::{json, Value};

/// The spec's own vectors, next to this repository.
fn spec_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec/vectors")
}

fn dirs() -> Vec<PathBuf> {
    let mut dirs = vec![spec_dir()];
    if let Ok(extra) = std::env::var("JKM_EXTRA_VECTORS") {
        dirs.extend(
            extra
                .split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
        );
    }
    dirs
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let rd = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("vector directory {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = rd
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

fn judgement_json(j: &Judgement) -> Value {
    json!({
        "decision": j.verdict.label(),
        "color": j.color.map(|c| c.name()),
        "reason": j.reason.label(),
        "conditions": j.conditions.names().collect::<Vec<_>>(),
    })
}

/// The decision as the API writes it, for comparison with `expect`.
fn decision_json(d: &Decision) -> Value {
    let mut v = judgement_json(&d.holder);
    if let Some(c) = &d.companions {
        v["companions"] = c.as_slice().iter().map(judgement_json).collect();
    }
    v
}

/// A fixed root key, so revoked keys go through the real signed `key` event path.
fn root() -> RootSigner {
    RootSigner::from_seed(&[0x52; 32])
}

fn run_verify_case(case: &Value) -> Result<(), String> {
    let now = case["now"].as_u64().ok_or("now")?;
    let (trust, _refused) =
        TrustList::from_json(case["trust"].to_string().as_bytes()).map_err(|e| e.to_string())?;
    let policy =
        Policy::from_json(case["policy"].to_string().as_bytes()).map_err(|e| e.to_string())?;
    let v = Verifier::new(Settings::default(), trust, Some(policy), None);
    let root_signer = root();
    let root_key = RootKey::from_b64(&root_signer.public_b64()).map_err(|e| e.to_string())?;
    let mut lines: Vec<String> = Vec::new();
    for ev in case["status"].as_array().into_iter().flatten() {
        lines.push(ev.to_string());
    }
    for cti in case["revoked"].as_array().into_iter().flatten() {
        let cti = cti.as_str().ok_or("revoked entry")?;
        lines
            .push(json!({"type": "revoke_token", "cti": cti, "exp": now + 2 * 86_400}).to_string());
    }
    for kid in case
        .get("revoked_keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        lines.push(root_signer.key_revoke_event(kid.as_str().ok_or("revoked_keys entry")?));
    }
    for line in &lines {
        let ev = feed_event::parse(line.as_bytes(), Some(&root_key))
            .map_err(|e| format!("feed event: {e}"))?;
        v.apply(ev, now).map_err(|e| format!("apply: {e}"))?;
    }
    let code = case["code"].as_str().ok_or("code")?;
    let venue = case["venue"].as_str().ok_or("venue")?;
    let expect = &case["expect"];
    // Twice: the first decision verifies the signature, the second hits the cache; both
    // must give the expected answer.
    for pass in ["cold", "warm"] {
        let d = v
            .decide(code, venue, now)
            .map_err(|e| format!("{pass}: request error {e}"))?;
        let got = decision_json(&d);
        if &got != expect {
            return Err(format!("{pass}: expected {expect}, got {got}"));
        }
    }
    Ok(())
}

fn run_pseudonym_case(case: &Value) -> Result<(), String> {
    let key =
        PseudonymKey::from_b64(case["key"].as_str().ok_or("key")?).ok_or("key: not 32 bytes")?;
    let kind = CardKind::from_name(case["kind"].as_str().ok_or("kind")?).ok_or("kind: unknown")?;
    let sub = key.pseudonym(kind, case["number"].as_str().ok_or("number")?);
    let hex: String = sub.0.iter().map(|b| format!("{b:02x}")).collect();
    if Some(hex.as_str()) != case["sub_hex"].as_str() {
        return Err(format!("expected {}, got {hex}", case["sub_hex"]));
    }
    if Some(gateway_core::b64::encode(&sub.0).as_str()) != case["sub"].as_str() {
        return Err(format!("base64url mismatch for {}", case["sub"]));
    }
    Ok(())
}

fn run_case(case: &Value) -> Result<(), String> {
    if case.get("code").is_some() && case.get("expect").is_some() {
        run_verify_case(case)
    } else if case.get("sub_hex").is_some() && case.get("key").is_some() {
        run_pseudonym_case(case)
    } else {
        Err("case of an unknown shape: teach tests/vectors.rs to run it".into())
    }
}

#[test]
fn every_vector_passes() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for dir in dirs() {
        for file in json_files(&dir) {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let doc: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let Some(cases) = doc.as_array() else {
                failures.push(format!("{}: not an array of cases", file.display()));
                continue;
            };
            for (i, case) in cases.iter().enumerate() {
                ran += 1;
                let name = case["name"]
                    .as_str()
                    .map_or_else(|| format!("#{i}"), str::to_owned);
                if let Err(e) = run_case(case) {
                    let file_name = file
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    failures.push(format!("{file_name}: {name}: {e}"));
                }
            }
        }
    }
    assert!(
        ran >= 186,
        "only {ran} vector cases found: is spec/vectors there?"
    );
    assert!(
        failures.is_empty(),
        "{} of {ran} vector cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{ran} vector cases passed");
}
