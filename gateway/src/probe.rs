//! `gateway probe`: one HTTP/1.1 GET to the gateway's own admin port, exit 0 on 200.
//! For container health checks where the image has no shell and no curl
//! (`deploy/docker/Dockerfile`'s `HEALTHCHECK`). Plain HTTP to a loopback admin port
//! only: a probe needs no TLS client, and the admin port serves plaintext.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use clap::Args;

use crate::config::ConfigError;

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// What to ask: `http://HOST:PORT/PATH` (the admin port's /healthz or /readyz).
    #[arg(long, default_value = "http://127.0.0.1:9090/healthz")]
    pub url: String,
    /// Give up after this many seconds (connect, send and answer together).
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
}

/// Splits `http://host:port/path`.
fn parse(url: &str) -> Result<(String, String), ConfigError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ConfigError::flag("url", "only http:// (the admin port) is probed"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/healthz"),
    };
    if authority.is_empty() || path.contains(char::is_whitespace) {
        return Err(ConfigError::flag("url", "expected http://HOST:PORT/PATH"));
    }
    Ok((authority.to_string(), path.to_string()))
}

/// Probes `a.url`: `Ok` with the status line on 200, `Err` otherwise.
pub fn probe(a: &ProbeArgs) -> Result<String, ConfigError> {
    let (authority, path) = parse(&a.url)?;
    let timeout = Duration::from_secs(a.timeout.max(1));
    let addr: SocketAddr = authority
        .to_socket_addrs()
        .map_err(|e| ConfigError::flag("url", format!("{authority}: {e}")))?
        .next()
        .ok_or_else(|| ConfigError::flag("url", format!("{authority}: no address")))?;
    let fail = |e: std::io::Error| ConfigError::Probe {
        url: a.url.clone(),
        what: e.to_string(),
    };
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(fail)?;
    s.set_read_timeout(Some(timeout)).map_err(fail)?;
    s.set_write_timeout(Some(timeout)).map_err(fail)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(fail)?;
    // The status line is all that is read (at most 1 KiB).
    let mut head = Vec::new();
    s.take(1024).read_to_end(&mut head).map_err(fail)?;
    let text = String::from_utf8_lossy(&head);
    let status = text.lines().next().unwrap_or_default().trim().to_string();
    match status.split_whitespace().nth(1) {
        Some("200") => Ok(status),
        _ => Err(ConfigError::Probe {
            url: a.url.clone(),
            what: format!("{status:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse("http://127.0.0.1:9090/readyz").unwrap(),
            ("127.0.0.1:9090".into(), "/readyz".into())
        );
        assert_eq!(parse("http://[::1]:9090").unwrap().1, "/healthz");
        assert!(parse("https://127.0.0.1:8443/healthz").is_err());
        assert!(parse("http:///healthz").is_err());
        assert!(parse("http://h:1/a b").is_err());
    }
}
