//! `validator sync`: the bundle fetched over HTTP/1.1, 2 or 3, every line checked by the
//! core against the root key (and the lists against the bundle's issuer keys), what
//! passes merged over what DIR holds (never going back: an older policy, key document or
//! list does not replace a newer one) and written atomically; with `--follow`, each
//! list's updates fetched at the interval, the bundle again when a list was replaced and
//! at least every ten intervals.

use std::net::ToSocketAddrs;
use std::time::Duration;

use bytes::Bytes;
use gateway_client::{Conn, Target};
use gateway_core::feed_event::Event;
use gateway_core::trust::RootKey;

use crate::args::SyncArgs;
use crate::{state, Error};

/// Runs `sync` (and `--follow` until stopped, or for `--rounds`).
pub async fn run(a: &SyncArgs) -> Result<(), Error> {
    let root = gateway_issuer::keys::read_root_key(&a.root_key)
        .map_err(|e| Error::file(&a.root_key, e))?;
    let target = target(a)?;
    sync_bundle(a, &target, &root).await?;
    let Some(every) = a.follow else {
        return Ok(());
    };
    let every = Duration::from_secs(every.max(1));
    let mut round = 0u64;
    loop {
        tokio::time::sleep(every).await;
        round += 1;
        let replaced = follow_updates(a, &target).await?;
        if replaced || round.is_multiple_of(10) {
            sync_bundle(a, &target, &root).await?;
        }
        if a.rounds.is_some_and(|r| round >= r) {
            return Ok(());
        }
    }
}

fn target(a: &SyncArgs) -> Result<Target, Error> {
    let rest = a
        .from
        .strip_prefix("https://")
        .ok_or_else(|| Error::Usage("--from must be https://HOST:PORT".into()))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| Error::Usage(format!("--from {authority}: {e}")))?
        .next()
        .ok_or_else(|| Error::Usage(format!("--from {authority}: no address")))?;
    let ca = match &a.ca {
        Some(p) => {
            let pem = std::fs::read(p).map_err(|e| Error::file(p, e))?;
            let cert = rustls_pemfile::certs(&mut pem.as_slice())
                .next()
                .ok_or_else(|| Error::file(p, "no certificate"))?
                .map_err(|e| Error::file(p, e))?;
            Some(cert)
        }
        None => None,
    };
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .trim_matches(['[', ']']);
    let api_key = gateway_issuer::keys::read_api_key(&a.api_key_file)
        .map_err(|e| Error::file(&a.api_key_file, e))?;
    Ok(Target {
        addr,
        protocol: a.protocol,
        plain: false,
        ca,
        identity: None,
        server_name: a.server_name.clone().unwrap_or_else(|| host.to_owned()),
        api_key,
        timeout: Duration::from_secs(30),
        lean: false,
    })
}

/// GET with the caller's key; the body of a 200 (or `None` on 409).
async fn get(t: &Target, path: &str) -> Result<Option<Bytes>, Error> {
    let conn = Conn::connect(t)
        .await
        .map_err(|e| Error::Gateway(format!("connect: {e}")))?;
    let auth = format!("Bearer {}", t.api_key);
    let a = conn
        .request(
            t,
            http::Method::GET,
            path,
            &[("authorization", &auth)],
            Bytes::new(),
        )
        .await
        .map_err(|e| Error::Gateway(format!("{path}: {e}")))?;
    match a.status.as_u16() {
        200 => Ok(Some(a.body)),
        409 => Ok(None),
        s => Err(Error::Gateway(format!(
            "{path}: {s} {}",
            String::from_utf8_lossy(&a.body)
        ))),
    }
}

/// Fetches and merges the bundle; reports refused lines on standard error.
async fn sync_bundle(a: &SyncArgs, t: &Target, root: &RootKey) -> Result<(), Error> {
    let body = get(t, "/v1/offline/bundle")
        .await?
        .ok_or_else(|| Error::Gateway("bundle: 409".into()))?;
    let fetched =
        std::str::from_utf8(&body).map_err(|_| Error::Gateway("the bundle is not UTF-8".into()))?;
    let now = crate::unix_now();
    // The bundle on its own first: what it holds that passes.
    let alone = state::empty_verifier();
    let report = state::apply(&alone, root, fetched, now);
    for (line, why) in &report.refused {
        eprintln!("validator: bundle line {line} refused: {why}");
    }
    if report.policies == 0 {
        return Err(Error::NoPolicy(a.dir.display().to_string()));
    }
    // Then over what DIR holds: the core keeps the newer of each document.
    let merged = state::empty_verifier();
    if let Ok((held_root, held)) = state::read(&a.dir) {
        state::apply(&merged, &held_root, &held, now);
    }
    state::apply(&merged, root, fetched, now);
    state::write(
        &a.dir,
        &a.root_key,
        &gateway_core::offline::bundle::write(&merged),
    )?;
    eprintln!(
        "validator: kept {} lines of the bundle ({} refused) in {}",
        report.accepted,
        report.refused.len(),
        a.dir.display()
    );
    Ok(())
}

/// Fetches each held list's updates and applies them; whether a list was replaced.
async fn follow_updates(a: &SyncArgs, t: &Target) -> Result<bool, Error> {
    let (held_root, text) = state::read(&a.dir)?;
    let now = crate::unix_now();
    let v = state::empty_verifier();
    state::apply(&v, &held_root, &text, now);
    let wanted: Vec<(String, u64, u64)> = v
        .lists()
        .entries()
        .iter()
        .map(|e| (e.name().to_owned(), e.held().list().iat, e.held().applied()))
        .collect();
    let mut replaced = false;
    for (name, base, after) in wanted {
        let path = format!("/v1/status-lists/{name}/updates?base={base}&after={after}");
        let Some(body) = get(t, &path).await? else {
            replaced = true;
            continue;
        };
        for item in cbor_seq(&body) {
            if let Err(e) = v.apply(Event::StatusListUpdate(item), now) {
                eprintln!("validator: update of {name} refused: {e}");
            }
        }
    }
    state::write(
        &a.dir,
        &a.root_key,
        &gateway_core::offline::bundle::write(&v),
    )?;
    Ok(replaced)
}

/// The items of an RFC 8742 CBOR sequence, each as its bytes (each may carry one tag);
/// stops at the first that is not well-formed.
pub fn cbor_seq(body: &Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut start = 0usize;
    while start < body.len() {
        let mut r = gateway_core::cbor::Reader::new(&body[start..]);
        let before = r.remaining();
        // Each item is a COSE_Sign1_Tagged: its tag, then the array (the reader skips
        // untagged items only).
        if r.peek_major() == Ok(gateway_core::cbor::TAG) && r.head().is_err() {
            break;
        }
        if r.skip(1).is_err() {
            break;
        }
        let len = before - r.remaining();
        out.push(body.slice(start..start + len));
        start += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cbor_sequence_splits_into_its_tagged_items() {
        // Two tagged arrays, then half of a third.
        let body =
            Bytes::from_static(&[0xd2, 0x82, 0x01, 0x02, 0xd2, 0x81, 0x40, 0xd2, 0x82, 0x01]);
        let items = cbor_seq(&body);
        assert_eq!(items, [&body[..4], &body[4..7]]);
        assert!(cbor_seq(&Bytes::new()).is_empty());
    }
}
