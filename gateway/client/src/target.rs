//! Where and how to connect.

use std::net::SocketAddr;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Which protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 over TLS or plaintext.
    H1,
    /// HTTP/2 over TLS, or h2c with prior knowledge.
    H2,
    /// HTTP/3 over QUIC.
    H3,
}

impl Protocol {
    /// The three, in order.
    pub const ALL: [Protocol; 3] = [Protocol::H1, Protocol::H2, Protocol::H3];

    /// The ALPN name offered in TLS.
    pub fn alpn(self) -> &'static [u8] {
        match self {
            Protocol::H1 => b"http/1.1",
            Protocol::H2 => b"h2",
            Protocol::H3 => b"h3",
        }
    }
}

/// A client certificate chain and its key, for mTLS.
pub type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// Where and how to connect, and what every request carries.
pub struct Target {
    /// The gateway's address.
    pub addr: SocketAddr,
    /// Which protocol.
    pub protocol: Protocol,
    /// Plaintext (HTTP/1.1 or h2c) instead of TLS; not for HTTP/3.
    pub plain: bool,
    /// The certificate authority trusted for the server's certificate.
    pub ca: Option<CertificateDer<'static>>,
    /// A client certificate presented in the handshake.
    pub identity: Option<Identity>,
    /// Name the certificate is checked against, and the request's authority.
    pub server_name: String,
    /// The bearer key [`Conn::post`](crate::Conn::post) sends; none when empty.
    pub api_key: String,
    /// Longest wait to connect, and for one whole answer.
    pub timeout: Duration,
    /// HTTP/2 through [`RawH2`](crate::RawH2) and HTTP/3 through [`RawH3`](crate::RawH3),
    /// the lean clients for load generation (answers without header fields); HTTP/1.1
    /// ignores it.
    pub lean: bool,
}

impl Target {
    /// A TLS target named `localhost`, trusting `ca`, with no key and a 30 s timeout.
    pub fn tls(addr: SocketAddr, protocol: Protocol, ca: CertificateDer<'static>) -> Target {
        Target {
            addr,
            protocol,
            plain: false,
            ca: Some(ca),
            identity: None,
            server_name: "localhost".into(),
            api_key: String::new(),
            timeout: Duration::from_secs(30),
            lean: false,
        }
    }

    /// A plaintext target (HTTP/1.1, or h2c with prior knowledge) named `localhost`,
    /// with no key and a 30 s timeout.
    pub fn plain(addr: SocketAddr, protocol: Protocol) -> Target {
        Target {
            addr,
            protocol,
            plain: true,
            ca: None,
            identity: None,
            server_name: "localhost".into(),
            api_key: String::new(),
            timeout: Duration::from_secs(30),
            lean: false,
        }
    }

    pub(crate) fn scheme(&self) -> &'static str {
        if self.plain {
            "http"
        } else {
            "https"
        }
    }
}

impl Clone for Target {
    fn clone(&self) -> Target {
        Target {
            addr: self.addr,
            protocol: self.protocol,
            plain: self.plain,
            ca: self.ca.clone(),
            identity: self
                .identity
                .as_ref()
                .map(|(chain, key)| (chain.clone(), key.clone_key())),
            server_name: self.server_name.clone(),
            api_key: self.api_key.clone(),
            timeout: self.timeout,
            lean: self.lean,
        }
    }
}
