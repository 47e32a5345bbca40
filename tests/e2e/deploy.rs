//! The deployment files of `deploy/` against the binary they deploy: the Dockerfile's
//! stages, user, volume and health check (the check itself run against a real
//! gateway), the Kubernetes manifests (every document parsed; ports, probe paths, key
//! files and the state directory agree with the configuration they mount), and the
//! systemd unit (`systemd-analyze verify`, where it runs, and its hardening).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

use crate::support::{Gateway, Options};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(deploy(file)).unwrap()
}

/// `(instruction, arguments)` of a Dockerfile, continuation lines joined.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut line = String::new();
    for raw in text.lines() {
        let t = raw.trim();
        if t.starts_with('#') || (t.is_empty() && line.is_empty()) {
            continue;
        }
        line.push_str(t.trim_end_matches('\\'));
        line.push(' ');
        if !t.ends_with('\\') {
            let l = line.trim().to_string();
            let (op, args) = l.split_once(' ').unwrap_or((&l, ""));
            out.push((op.to_uppercase(), args.trim().to_string()));
            line.clear();
        }
    }
    out
}

/// The serve flags a TOML configuration gives.
fn serve_args(toml_text: &str) -> gateway::config::ServeArgs {
    toml::from_str(toml_text).unwrap()
}

#[tokio::test]
async fn the_dockerfile_builds_in_stages_runs_unprivileged_and_probes_itself() {
    let ins = instructions(&read("docker/Dockerfile"));
    let froms: Vec<&String> = ins
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, a)| a)
        .collect();
    assert!(froms.len() >= 2, "a multi-stage build: {froms:?}");
    assert!(froms[0].contains(" AS build"), "{froms:?}");
    // The runtime stage: everything after the last FROM.
    let last = ins.iter().rposition(|(op, _)| op == "FROM").unwrap();
    let runtime = &ins[last..];
    let get = |op: &str| -> Vec<&str> {
        runtime
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    assert!(
        get("COPY").iter().any(|a| a.contains("--from=build")),
        "the binary comes from the build stage"
    );
    let user = get("USER");
    assert_eq!(user.len(), 1, "{user:?}");
    let uid = user[0].split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "runs as {uid}");
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u >= 1000),
        "a numeric unprivileged uid: {uid}"
    );
    // The volume is where the configuration it runs with keeps its state.
    let cmd = get("CMD").join(" ");
    assert!(cmd.contains("\"serve\""), "{cmd}");
    let volume = get("VOLUME").join(" ");
    assert!(volume.contains("/var/lib/gateway"), "{volume}");
    let k8s_toml = config_map_toml();
    assert_eq!(
        serve_args(&k8s_toml).state_dir.as_deref(),
        Some(Path::new("/var/lib/gateway"))
    );
    let expose = get("EXPOSE").join(" ");
    for port in ["8443/tcp", "8443/udp", "9090/tcp"] {
        assert!(expose.contains(port), "{port} not in {expose}");
    }

    // The health check: `gateway probe --url http://127.0.0.1:9090/healthz` in exec form.
    let hc = get("HEALTHCHECK");
    assert_eq!(hc.len(), 1);
    let json = &hc[0][hc[0].find('[').unwrap()..];
    let argv: Vec<String> = serde_json::from_str(json).unwrap();
    assert_eq!(argv[0], "/usr/local/bin/gateway");
    assert_eq!(argv[1..3], ["probe", "--url"]);
    let url = argv[3].clone();
    assert!(url.ends_with(":9090/healthz"), "{url}");

    // Run that very command (the test gateway's admin port in place of 9090): 0 while it
    // serves, not 0 once it is gone.
    let gw = Gateway::start(Options::default()).await;
    let here = url.replace("127.0.0.1:9090", &gw.admin.to_string());
    let run = |url: String| async move {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
                .args(["probe", "--url", &url])
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let ok = run(here.clone()).await;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let ready = run(here.replace("/healthz", "/readyz")).await;
    assert!(ready.status.success());
    let missing = run(here.replace("/healthz", "/nothing")).await;
    assert_eq!(missing.status.code(), Some(2));
    let admin = gw.admin;
    drop(gw);
    crate::support::eventually("the gateway gone", || async {
        std::net::TcpStream::connect(admin).is_err().then_some(())
    })
    .await;
    let gone = run(here).await;
    assert_eq!(gone.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("gateway: http://"));
}

fn manifests() -> Vec<Yaml> {
    YamlLoader::load_from_str(&read("kubernetes/gateway.yaml")).unwrap()
}

fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> Vec<&'a Yaml> {
    docs.iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect()
}

fn config_map_toml() -> String {
    let docs = manifests();
    let cm = of_kind(&docs, "ConfigMap");
    cm[0]["data"]["gateway.toml"].as_str().unwrap().to_string()
}

fn port_of(addr: &std::net::SocketAddr) -> i64 {
    i64::from(addr.port())
}

#[test]
fn the_kubernetes_manifests_agree_with_the_configuration_they_mount() {
    let docs = manifests();
    let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for k in [
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    ] {
        assert!(kinds.contains(k), "{k} missing: {kinds:?}");
    }
    let cfg = serve_args(&config_map_toml());
    let resolved = cfg.clone().resolve().unwrap();
    let listen = port_of(&resolved.listen);
    let admin = port_of(&resolved.admin_listen);
    assert!(
        !resolved.admin_listen.ip().is_loopback(),
        "probes reach the pod's address"
    );

    let deployment = of_kind(&docs, "Deployment")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let c = &pod["containers"][0];
    // Ports: the listener on TCP and UDP, the admin port; probes by name.
    let ports: Vec<(&str, i64, &str)> = c["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["containerPort"].as_i64().unwrap(),
                p["protocol"].as_str().unwrap(),
            )
        })
        .collect();
    for want in [
        ("https", listen, "TCP"),
        ("h3", listen, "UDP"),
        ("admin", admin, "TCP"),
    ] {
        assert!(ports.contains(&want), "{want:?} not in {ports:?}");
    }
    let probe = |which: &str| {
        let p = &c[which]["httpGet"];
        (p["path"].as_str().unwrap(), p["port"].as_str().unwrap())
    };
    assert_eq!(probe("readinessProbe"), ("/readyz", "admin"));
    assert_eq!(probe("livenessProbe"), ("/healthz", "admin"));
    // Requests and limits are set.
    assert!(c["resources"]["requests"]["cpu"].as_str().is_some());
    assert!(c["resources"]["limits"]["memory"].as_str().is_some());

    // Every file the configuration names sits under a mount; the secret ones under the
    // keys volume, which the init container fills from the Secret mounted 0400.
    let mounts: Vec<(&str, &str)> = c["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap(),
                m["mountPath"].as_str().unwrap(),
            )
        })
        .collect();
    let mount_of = |path: &Path| {
        mounts
            .iter()
            .find(|(_, m)| path.starts_with(m))
            .map(|(n, _)| *n)
            .unwrap_or_else(|| panic!("{} is under no mount: {mounts:?}", path.display()))
    };
    let secrets: Vec<&Path> = [
        cfg.tls_key.as_deref(),
        cfg.pseudonym_key.as_deref(),
        cfg.callers.as_deref(),
        cfg.nats_nkey.as_deref(),
    ]
    .into_iter()
    .flatten()
    .chain(cfg.feed_key.iter().map(PathBuf::as_path))
    .collect();
    assert!(secrets.len() >= 5, "{secrets:?}");
    for s in &secrets {
        assert_eq!(mount_of(s), "keys", "{}", s.display());
    }
    for p in [
        cfg.trust.as_deref(),
        cfg.policy.as_deref(),
        cfg.root_key.as_deref(),
    ]
    .into_iter()
    .flatten()
    {
        mount_of(p);
    }
    assert_eq!(mount_of(cfg.state_dir.as_deref().unwrap()), "state");
    let volumes = pod["volumes"].as_vec().unwrap();
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap()
    };
    assert_eq!(
        volume("secrets")["secret"]["defaultMode"].as_i64(),
        Some(0o400)
    );
    assert_eq!(
        volume("keys")["emptyDir"]["medium"].as_str(),
        Some("Memory")
    );
    let init = pod["initContainers"][0]["command"][2].as_str().unwrap();
    assert!(
        init.contains("chmod 0400") && init.contains("chown 65532"),
        "{init}"
    );

    // The Service exposes the listener on TCP and UDP, never the admin port.
    let svc = of_kind(&docs, "Service")[0];
    let svc_ports: Vec<(&str, &str)> = svc["spec"]["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["targetPort"].as_str().unwrap(),
                p["protocol"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(svc_ports, [("https", "TCP"), ("h3", "UDP")]);
    // The budget and the autoscaler point at the Deployment.
    let name = deployment["metadata"]["name"].as_str().unwrap();
    let hpa = of_kind(&docs, "HorizontalPodAutoscaler")[0];
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"].as_str(), Some(name));
    let pdb = of_kind(&docs, "PodDisruptionBudget")[0];
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    let unit = read("systemd/gateway.service");
    let values = |key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
            .collect()
    };
    let one = |key: &str| values(key).pop().unwrap_or_default();
    assert_eq!(one("DynamicUser"), "yes");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("ProtectSystem"), "strict");
    assert!(one("LimitNOFILE").parse::<u64>().unwrap() >= 16_384);
    assert!(!one("MemoryMax").is_empty());
    assert_eq!(one("Restart"), "on-failure");
    // The only writable path is the configuration's state directory, and every secret
    // the configuration names comes in as a credential.
    let cfg = serve_args(&read("systemd/gateway.toml"));
    let state = cfg.state_dir.clone().unwrap();
    assert_eq!(values("ReadWritePaths"), [state.display().to_string()]);
    assert_eq!(
        Path::new("/var/lib").join(one("StateDirectory")),
        state,
        "StateDirectory makes the state directory"
    );
    let credentials: BTreeSet<String> = values("LoadCredential")
        .iter()
        .map(|c| c.split(':').next().unwrap().to_string())
        .collect();
    for s in [
        cfg.tls_cert.clone(),
        cfg.tls_key.clone(),
        cfg.pseudonym_key.clone(),
        cfg.callers.clone(),
        cfg.nats_nkey.clone(),
    ]
    .into_iter()
    .flatten()
    .chain(cfg.feed_key.iter().cloned())
    {
        let dir = Path::new("/run/credentials/gateway.service");
        let name = s
            .strip_prefix(dir)
            .unwrap_or_else(|_| panic!("{}", s.display()));
        assert!(
            credentials.contains(&name.display().to_string()),
            "{} is not a LoadCredential",
            name.display()
        );
    }
    assert!(
        unit.contains("ExecStart=/usr/local/bin/gateway serve --config /etc/gateway/gateway.toml")
    );

    // systemd's own check, with ExecStart pointing at the binary under test.
    let dir = crate::support::TempDir::new("unit");
    let path = dir.0.join("gateway.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/gateway", env!("CARGO_BIN_EXE_gateway")),
    )
    .unwrap();
    match std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
    {
        Ok(out) => {
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success() && said.trim().is_empty(), "{said}");
        }
        Err(e) => {
            eprintln!("SKIPPED: systemd-analyze not found ({e}); the unit was checked by text only")
        }
    }
}
