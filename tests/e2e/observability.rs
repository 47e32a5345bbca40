//! Observability as shipped in `deploy/`: every metric the alert rules and the Grafana
//! dashboard name is one the real binary exports, the gauges added for them say what
//! they should (readiness, the certificate's expiry, distinct card numbers per caller),
//! and the rules pass `promtool` (its own unit tests included) where it is installed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::support::client::{get_plain, Protocol};
use crate::support::{Gateway, Options};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

/// Every `gateway_…` name in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("gateway_") {
        let before = rest[..i].chars().next_back();
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

/// The families in a Prometheus text exposition (`# TYPE name kind`), with a
/// histogram's `_bucket`, `_sum` and `_count` series.
fn exported(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (w.next(), w.next(), w.next(), w.next())
        {
            out.insert(name.to_string());
            if kind == "histogram" || kind == "summary" {
                for s in ["_bucket", "_sum", "_count"] {
                    out.insert(format!("{name}{s}"));
                }
            }
        }
    }
    out
}

/// The value of the first series of `name` whose labels contain `labels`.
fn value(text: &str, name: &str, labels: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let (series, _) = l.rsplit_once(' ').unwrap_or((l, ""));
            (series == name || series.starts_with(&format!("{name}{{"))) && series.contains(labels)
        })
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

#[tokio::test]
async fn the_rules_and_the_dashboard_name_only_metrics_the_gateway_exports() {
    let gw = Gateway::start(Options::default()).await;
    // A shadow policy that judges a green bus rider otherwise, so the verification
    // below makes the shadow's series exist (policy.md revision 4).
    let mut shadow: serde_json::Value =
        serde_json::from_str(&gateway_core::policy::reference_policy_json(2)).unwrap();
    shadow["venues"]["bus"]["green"] = "allow_mask".into();
    shadow["shadow"] = true.into();
    let root = gateway_issuer::keys::read_root_signer(&gw.setup.root_seed()).unwrap();
    gw.append_feed(&format!("{}\n", root.policy_event(&shadow.to_string())));
    crate::support::eventually("the shadow policy", || async {
        let s = gw.status().await;
        (s["shadow_policy_version"] == 2).then_some(())
    })
    .await;
    // Traffic that makes the per-caller series exist: a verification and card checks of
    // three distinct numbers (one of them twice, spelled differently).
    let mut c = gw.client(Protocol::H1).await;
    let code = gw.mint(gateway_core::Sub([3; 16]), gateway_core::Color::Green, 0);
    let a = c
        .post(
            "/v1/verify",
            &gw.api_key,
            serde_json::json!({"code": code, "venue": "bus"}).to_string(),
        )
        .await;
    assert_eq!(a.status, 200);
    for number in [
        "33010619800101001X",
        "3301 0619 8001 0100 1x",
        "110105199003070012",
        "440305200012120021",
    ] {
        let card = serde_json::json!({"card_kind": "id_card", "number": number, "venue": "bus"});
        let a = c
            .post("/v1/verify/card", &gw.api_key, card.to_string())
            .await;
        assert_eq!(a.status, 200);
    }
    let text =
        String::from_utf8(get_plain(gw.admin, "/metrics").await.unwrap().body.to_vec()).unwrap();
    let have = exported(&text);

    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let dashboard = std::fs::read_to_string(deploy("grafana/gateway.json")).unwrap();
    let board: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let panels = board["panels"].as_array().unwrap();
    assert!(panels.len() >= 15, "{} panels", panels.len());
    for p in panels {
        assert!(
            !p["targets"].as_array().unwrap().is_empty(),
            "panel {} has no query",
            p["title"]
        );
    }
    for (what, text) in [("alerts.yml", &rules), ("gateway.json", &dashboard)] {
        let named = metric_names(text);
        assert!(named.len() >= 10, "{what} names only {named:?}");
        let missing: Vec<_> = named.difference(&have).collect();
        assert!(
            missing.is_empty(),
            "{what} names metrics the gateway does not export: {missing:?}\nexported: {have:?}"
        );
    }

    // The gauges the alerts need say what they should.
    assert_eq!(value(&text, "gateway_ready", ""), Some(1.0), "{text}");
    assert_eq!(
        value(
            &text,
            "gateway_caller_card_numbers_distinct",
            r#"caller="dev""#
        ),
        Some(3.0),
        "{text}"
    );
    let pem = std::fs::read(gw.setup.cert()).unwrap();
    let der = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .unwrap()
        .unwrap();
    let not_after = gateway::listen::tls::cert_not_after(&der).unwrap();
    assert_eq!(
        value(&text, "gateway_tls_cert_not_after_seconds", ""),
        Some(not_after as f64)
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(not_after > now, "{not_after} {now}");
    // No number, in any spelling, in the metrics.
    for n in ["33010619800101001X", "110105199003070012", "3301 0619"] {
        assert!(!text.contains(n));
    }
}

/// Every alert's runbook annotation points at a section of docs/OPERATIONS.md.
#[test]
fn every_alert_has_its_runbook() {
    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let ops = std::fs::read_to_string(deploy("../docs/OPERATIONS.md")).unwrap();
    let anchors: BTreeSet<String> = ops
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(|h| h.trim().to_lowercase())
        .collect();
    let mut n = 0;
    for line in rules.lines() {
        if let Some(link) = line.trim().strip_prefix("runbook: docs/OPERATIONS.md#") {
            assert!(
                anchors.contains(link.trim()),
                "no section for {link} in OPERATIONS.md"
            );
            n += 1;
        }
    }
    let alerts = rules.matches("- alert: ").count();
    assert_eq!(n, alerts, "every alert has a runbook");
}

/// `promtool check rules` and `promtool test rules` on `deploy/prometheus/`. Skipped
/// with a loud line where promtool is missing, except under `CI=true` (`.ci/run`
/// installs Debian's `prometheus`).
#[test]
fn promtool_checks_the_rules_and_their_unit_tests() {
    let dir = deploy("prometheus");
    let Some(promtool) = crate::support::outside_program(
        &["promtool"],
        "the alert rules' promtool check",
        "apt-get install prometheus",
    ) else {
        return;
    };
    let run = |args: &[&str]| {
        std::process::Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool runs")
    };
    let out = run(&["check", "rules", "alerts.yml"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["test", "rules", "alerts.test.yml"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.contains("SUCCESS"), "{said}");
}
