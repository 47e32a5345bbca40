//! TLS server configuration (rustls with the ring provider): the certificate chain and
//! key from PEM files, ALPN for each listener, and optional client certificates (mTLS).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::ConfigError;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM certificate chain.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let text = std::fs::read(path).map_err(|e| ConfigError::file(path, e))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut text.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigError::file(path, format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(ConfigError::file(path, "no certificate in the file"));
    }
    Ok(certs)
}

/// The first certificate's not-after time, in Unix seconds, for
/// `gateway_tls_cert_not_after_seconds` (the certificate-expiry alert).
pub fn not_after(path: &Path) -> Result<i64, ConfigError> {
    let certs = load_certs(path)?;
    let first = certs.first().map(|c| c.as_ref()).unwrap_or_default();
    cert_not_after(first)
        .ok_or_else(|| ConfigError::file(path, "the certificate's validity cannot be read"))
}

/// Walks the DER of an X.509 certificate to `tbsCertificate.validity.notAfter`
/// (RFC 5280 4.1): `None` for anything that is not that shape. A few lines of DER
/// instead of an X.509 crate: this is the only field the gateway reads, once at start.
pub fn cert_not_after(der: &[u8]) -> Option<i64> {
    let (cert, _) = der_item(der, 0x30)?;
    let (tbs, _) = der_item(cert, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = der_item(rest, 0xa0)?.1; // version
    }
    rest = der_item(rest, 0x02)?.1; // serialNumber
    rest = der_item(rest, 0x30)?.1; // signature
    rest = der_item(rest, 0x30)?.1; // issuer
    let (validity, _) = der_item(rest, 0x30)?;
    let tag = |v: &[u8]| v.first().copied();
    let not_before_tag = tag(validity)?;
    let (_, after) = der_item(validity, not_before_tag)?;
    let t = tag(after)?;
    let (time, _) = der_item(after, t)?;
    der_time(t, time)
}

/// One DER item of tag `tag` at the start of `b`: its contents and what follows.
fn der_item(b: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *b.first()? != tag {
        return None;
    }
    let first = *b.get(1)?;
    let (len, head) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*b.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let end = head.checked_add(len)?;
    Some((b.get(head..end)?, b.get(end..)?))
}

/// UTCTime (`YYMMDDHHMMSSZ`, 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn der_time(tag: u8, t: &[u8]) -> Option<i64> {
    let digits = |s: &[u8]| -> Option<u32> {
        s.iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let (year, rest) = match (tag, t.len()) {
        (0x17, 13) => {
            let yy = digits(&t[..2])? as i32;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &t[2..])
        }
        (0x18, 15) => (digits(&t[..4])? as i32, &t[4..]),
        _ => return None,
    };
    if rest.last() != Some(&b'Z') {
        return None;
    }
    let part = |i: usize| digits(&rest[i..i + 2]);
    let month = time::Month::try_from(u8::try_from(part(0)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(year, month, u8::try_from(part(2)?).ok()?).ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(part(4)?).ok()?,
        u8::try_from(part(6)?).ok()?,
        u8::try_from(part(8)?).ok()?,
    )
    .ok()?;
    Some(
        time::PrimitiveDateTime::new(date, clock)
            .assume_utc()
            .unix_timestamp(),
    )
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let text = gateway_issuer::owner_only::read_secret(path)?;
    rustls_pemfile::private_key(&mut text.as_slice())
        .map_err(|e| ConfigError::file(path, format!("not a PEM private key: {e}")))?
        .ok_or_else(|| ConfigError::file(path, "no private key in the file"))
}

/// The server configuration, with `alpn` protocols, shared by TCP (h2, http/1.1) and
/// QUIC (h3) with different ALPN lists.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, ConfigError> {
    let certs = load_certs(cert)?;
    let key_der = load_key(key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ConfigError::file(cert, e))?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in load_certs(ca)? {
                roots.add(c).map_err(|e| ConfigError::file(ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| ConfigError::file(ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(certs, key_der)
        .map_err(|e| ConfigError::file(key, format!("key does not fit the certificate: {e}")))?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_expiring(days: i64) -> (Vec<u8>, i64) {
        let mut p = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let at = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap()
            + time::Duration::days(days);
        p.not_after = at;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        (cert.der().to_vec(), at.unix_timestamp())
    }

    #[test]
    fn reads_the_not_after_of_real_certificates() {
        // UTCTime before 2050, GeneralizedTime from 2050 (RFC 5280 4.1.2.5).
        for days in [1, 400, 30 * 365] {
            let (der, want) = cert_expiring(days);
            assert_eq!(cert_not_after(&der), Some(want), "{days} days");
        }
    }

    #[test]
    fn anything_else_is_none_and_never_a_panic() {
        use rand::{Rng, SeedableRng};
        let (der, _) = cert_expiring(10);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for n in 0..der.len() {
            assert_eq!(cert_not_after(&der[..n]), None, "cut at {n}");
        }
        for _ in 0..20_000 {
            let mut b = der.clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..b.len());
                b[i] = rng.gen();
            }
            let _ = cert_not_after(&b);
            let len = rng.gen_range(0..64);
            let noise: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let _ = cert_not_after(&noise);
        }
        assert_eq!(der_time(0x17, b"491231235959Z"), Some(2524607999));
        assert_eq!(der_time(0x17, b"991301000000Z"), None);
        assert_eq!(der_time(0x18, b"2049123123595"), None);
    }
}
