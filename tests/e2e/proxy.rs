//! The proxy endpoint behind a real nginx (`auth_request`), in front of a small upstream
//! on loopback, with the snippet of `docs/nginx.conf` (ports and paths filled in): a
//! green code is admitted and the upstream sees its color, a red one and a forged one
//! are denied with the reason, and a caller over its rate gets 503 (the gateway cannot
//! decide) through nginx; and `/v1/auth` answered directly, as Envoy's `ext_authz` sees it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use gateway_core::{Color, Sub};

use crate::support::client::Protocol;
use crate::support::{eventually, Gateway, Options, TempDir, LIMITED_KEY};

fn nginx_binary() -> Option<PathBuf> {
    crate::support::outside_program(
        &["nginx"],
        "the proxy tests behind nginx",
        "apt-get install nginx-light (it lives in /usr/sbin: have that on PATH)",
    )
}

struct Nginx {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx in the foreground, one process, every path in a temporary directory; the
/// gateway snippet from docs/nginx.conf between the markers, filled in.
fn start_nginx(gateway: std::net::SocketAddr, key: &str) -> Option<Nginx> {
    let bin = nginx_binary()?;
    let dir = TempDir::new("nginx");
    let (front, upstream) = (free_port(), free_port());
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/nginx.conf"),
    )
    .unwrap();
    let snippet = doc
        .split("# --- server ---")
        .nth(1)
        .and_then(|s| s.split("# --- end ---").next())
        .expect("docs/nginx.conf has the server block between its markers")
        .replace("127.0.0.1:8080", &gateway.to_string())
        .replace("127.0.0.1:9000", &format!("127.0.0.1:{upstream}"))
        .replace("listen 80;", &format!("listen 127.0.0.1:{front};"))
        .replace("REPLACE-WITH-THE-DOOR-SYSTEM-API-KEY", key);
    let d = dir.0.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         {snippet}\n\
           # The door system behind it: says what it was told.\n\
           server {{ listen 127.0.0.1:{upstream}; location / {{ return 200 \"opened color=$http_x_jkm_color conditions=$http_x_jkm_conditions code=$http_x_jkm_code venue=$http_x_jkm_venue\\n\"; }} }}\n\
         }}\n"
    );
    let path = dir.0.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let check = Command::new(&bin)
        .arg("-t")
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(&dir.0)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let child = Command::new(&bin)
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(&dir.0)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Some(Nginx {
        child,
        port: front,
        _dir: dir,
    })
}

/// A code as a door puts it in a header: as it is, or percent-encoded when its text
/// ends in a space (HTTP trims a header value), or always with `encode`.
fn header_form(code: &str, encode: bool) -> String {
    if !encode && !code.ends_with(' ') {
        return code.to_string();
    }
    let rest: String = code["JKM1:".len()..]
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect();
    format!("JKM1%3A{rest}")
}

/// One request through nginx, as a door sends it (a plain HTTP/1.1 GET with the code and
/// the venue in headers, a fresh connection): (status, x-jkm-reason, body).
async fn door(port: u16, path: &str, code: &str, venue: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return (0, String::new(), String::new());
    };
    let code = header_form(code, false);
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: door\r\nX-JKM-Code: {code}\r\nX-JKM-Venue: {venue}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let reason = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("x-jkm-reason")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, reason, body.to_string())
}

#[tokio::test]
async fn nginx_auth_request_admits_denies_and_says_when_it_cannot_decide() {
    let gw = Gateway::start(Options {
        plain: true,
        ..Options::default()
    })
    .await;
    let Some(nginx) = start_nginx(gw.plain.unwrap(), &gw.api_key) else {
        return;
    };
    let green = gw.mint(Sub([21; 16]), Color::Green, 0);
    let red = gw.mint(Sub([22; 16]), Color::Red, 0);
    let mut forged = green.clone().into_bytes();
    let last = forged.len() - 3;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    // nginx is up once it answers.
    let port = nginx.port;
    let g = green.clone();
    let (status, reason, body) = eventually("nginx answers", || {
        let g = g.clone();
        async move {
            let r = door(port, "/door/1", &g, "bus").await;
            (r.0 != 0).then_some(r)
        }
    })
    .await;
    assert_eq!((status, reason.as_str()), (200, "ok"), "{body}");
    // The door system sees the decision, never the scan nor what the client said.
    assert_eq!(body, "opened color=green conditions= code= venue=\n");

    let (status, reason, _) = door(port, "/door/1", &red, "bus").await;
    assert_eq!((status, reason.as_str()), (403, "red_code"));
    // A green holder with a red companion: the door opens for everyone or no one.
    let with = |color: Color| {
        let now = gateway_issuer::unix_now();
        let claims = gateway_core::token::NewClaims {
            iss: "CN-33".into(),
            sub: Sub([25; 16]),
            iat: now - 10,
            exp: now + 3600,
            cti: vec![25; 12],
            color: Color::Green,
            ver: 0,
            why: None,
            kind: None,
            with: Some(vec![
                gateway_core::token::Companion {
                    sub: Sub([26; 16]),
                    color: Color::Green,
                    ver: 0,
                },
                gateway_core::token::Companion {
                    sub: Sub([27; 16]),
                    color,
                    ver: 0,
                },
            ]),
            status: None,
        };
        gw.issuer().mint(&claims).unwrap()
    };
    let (status, reason, body) = door(port, "/door/1", &with(Color::Red), "bus").await;
    assert_eq!(
        (status, reason.as_str()),
        (403, "companion_denied"),
        "{body}"
    );
    let (status, reason, body) = door(port, "/door/1", &with(Color::Green), "bus").await;
    assert_eq!((status, reason.as_str()), (200, "ok"), "{body}");
    assert!(body.contains("conditions= "), "{body}");
    // A yellow companion at a bus: everyone's conditions (the holder's are none).
    let (status, _, body) = door(port, "/door/1", &with(Color::Yellow), "bus").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("conditions=mask "), "{body}");
    // The venue is the door's own (bus), whatever the client says: a yellow holder
    // naming a school (where yellow is denied) is judged at the bus, and an unknown
    // venue changes nothing.
    let yellow = gw.mint(Sub([28; 16]), Color::Yellow, 0);
    let (status, reason, body) = door(port, "/door/1", &yellow, "school").await;
    assert_eq!((status, reason.as_str()), (200, "ok"), "{body}");
    assert!(body.contains("conditions=mask "), "{body}");
    let (status, reason, _) = door(port, "/door/1", &green, "no_such_venue").await;
    assert_eq!((status, reason.as_str()), (200, "ok"));
    let (status, reason, _) = door(port, "/door/1", &forged, "bus").await;
    assert_eq!(status, 403);
    assert!(
        ["bad_signature", "malformed"].contains(&reason.as_str()),
        "{reason}"
    );

    // The restricted caller may make 3 requests a second: beyond, the gateway cannot
    // decide for it, and nginx answers 503 with Retry-After (its error_page).
    let gw2 = Gateway::start(Options {
        plain: true,
        reuse: Some(gw.dir.clone()),
        ..Options::default()
    })
    .await;
    let Some(limited) = start_nginx(gw2.plain.unwrap(), LIMITED_KEY) else {
        return;
    };
    let port = limited.port;
    let first = eventually("the second nginx answers", || {
        let g = green.clone();
        async move {
            let r = door(port, "/door/1", &g, "bus").await;
            (r.0 != 0).then_some(r.0)
        }
    })
    .await;
    let mut statuses = vec![first];
    for _ in 0..8 {
        statuses.push(door(limited.port, "/door/1", &green, "bus").await.0);
    }
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [200, 503].contains(s)),
        "{statuses:?}"
    );
    drop(gw2);
}

/// `/v1/auth` as Envoy's `ext_authz` calls it (path prefix kept, any method, headers
/// only), over HTTP/1.1 and HTTP/2 on the TLS port.
#[tokio::test]
async fn the_auth_endpoint_answers_with_status_and_headers() {
    let gw = Gateway::start(Options::default()).await;
    let auth = format!("Bearer {}", gw.api_key);
    let auth = auth.as_str();
    let green = header_form(&gw.mint(Sub([23; 16]), Color::Green, 0), false);
    let yellow = header_form(&gw.mint(Sub([24; 16]), Color::Yellow, 0), false);
    for proto in [Protocol::H1, Protocol::H2] {
        let mut c = gw.client(proto).await;
        let a = c
            .send(
                http::Method::GET,
                "/v1/auth/gate/7",
                &[
                    ("authorization", auth),
                    ("x-jkm-code", green.as_str()),
                    ("x-jkm-venue", "museum"),
                ],
                "",
            )
            .await;
        assert_eq!(a.status, 200);
        assert_eq!(a.headers["x-jkm-decision"], "allow");
        assert_eq!(a.headers["x-jkm-color"], "green");
        // The conditions /v1/verify gives the same code, comma-separated.
        let v = c
            .post(
                "/v1/verify",
                &gw.api_key,
                serde_json::json!({"code": green.clone(), "venue": "museum"}).to_string(),
            )
            .await
            .json();
        let conditions: Vec<&str> = v["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(a.headers["x-jkm-conditions"], conditions.join(",").as_str());
        assert!(a.body.is_empty());
        let a = c
            .send(
                http::Method::POST,
                "/v1/auth",
                &[
                    ("authorization", auth),
                    ("x-jkm-code", yellow.as_str()),
                    ("x-jkm-venue", "school"),
                ],
                "",
            )
            .await;
        assert_eq!(a.status, 403);
        assert_eq!(a.headers["x-jkm-decision"], "deny");
        assert_eq!(a.json()["decision"], "deny");
        // No code: nothing decided, 403 (a proxy must not open without one).
        let a = c
            .send(
                http::Method::GET,
                "/v1/auth",
                &[("authorization", auth), ("x-jkm-venue", "bus")],
                "",
            )
            .await;
        assert_eq!(a.status, 403);
        assert_eq!(a.headers["x-jkm-decision"], "none");
        assert_eq!(a.headers["x-jkm-reason"], "bad_request");
        let a = c
            .send(
                http::Method::GET,
                "/v1/auth",
                &[("x-jkm-code", green.as_str())],
                "",
            )
            .await;
        assert_eq!(a.status, 401);
    }
    // A code sent percent-encoded (its text may end in a space HTTP would trim).
    let encoded = header_form(&gw.mint(Sub([23; 16]), Color::Green, 0), true);
    assert!(encoded.starts_with("JKM1%3A"));
    let mut c = gw.client(Protocol::H1).await;
    let a = c
        .send(
            http::Method::GET,
            "/v1/auth",
            &[
                ("authorization", auth),
                ("x-jkm-code", encoded.as_str()),
                ("x-jkm-venue", "bus"),
            ],
            "",
        )
        .await;
    assert_eq!(a.status, 200);
}
