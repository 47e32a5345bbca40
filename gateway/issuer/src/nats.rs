//! Connecting to the NATS broker, for the gateway's feed follower and the publishers
//! alike: the same credentials (token, `.creds`, NKey seed; owner-only files) and the same
//! TLS rule (a CA given means TLS required).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{owner_only, IssueError};

/// How to authenticate to the NATS broker (files are read when connecting).
#[derive(Debug, Clone, Default)]
pub struct NatsAuth {
    /// A file holding the broker's auth token.
    pub token_file: Option<PathBuf>,
    /// A `.creds` file (user JWT and NKey seed).
    pub creds: Option<PathBuf>,
    /// A file holding the user's NKey seed.
    pub nkey: Option<PathBuf>,
    /// A PEM CA bundle for the broker's certificate (TLS then required).
    pub ca: Option<PathBuf>,
}

/// Why the broker could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// A credentials file could not be read.
    #[error("{0}: {1}")]
    File(String, std::io::Error),
    /// A credentials file is not owner-only, or not what it should be.
    #[error("{0}")]
    Secret(IssueError),
    /// No connection.
    #[error("connect: {0}")]
    Connect(String),
    /// The stream could not be created or read.
    #[error("stream {0}: {1}")]
    Stream(String, String),
    /// The consumer could not be created.
    #[error("consumer: {0}")]
    Consumer(String),
}

/// The connection name a gateway's follower gives the broker.
pub const GATEWAY_NAME: &str = "jkm-gateway";
/// The connection name a publisher gives the broker.
pub const PUBLISHER_NAME: &str = "jkm-publisher";

/// Connection options from the configuration (token, creds, CA).
async fn options(auth: &NatsAuth, name: &str) -> Result<async_nats::ConnectOptions, NatsError> {
    let mut o = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .event_callback(|ev| async move {
            match ev {
                async_nats::Event::Connected => tracing::info!("NATS connected"),
                async_nats::Event::Disconnected => tracing::warn!("NATS disconnected"),
                other => tracing::debug!(event = %other, "NATS event"),
            }
        });
    if let Some(p) = &auth.token_file {
        o = o.token(secret(p)?.trim().to_owned());
    }
    if let Some(p) = &auth.creds {
        owner_only::check_secret(p).map_err(NatsError::Secret)?;
        o = o
            .credentials_file(p)
            .await
            .map_err(|e| NatsError::File(p.display().to_string(), e))?;
    }
    if let Some(p) = &auth.nkey {
        o = o.nkey(secret(p)?.trim().to_owned());
    }
    if let Some(p) = &auth.ca {
        o = o.add_root_certificates(p.clone()).require_tls(true);
    }
    Ok(o)
}

/// A credential file's text, refused if group or others may read it.
fn secret(p: &Path) -> Result<String, NatsError> {
    owner_only::read_secret_text(p).map_err(NatsError::Secret)
}

/// Connects as a gateway (retrying in the background until the broker answers).
pub async fn connect(url: &str, auth: &NatsAuth) -> Result<async_nats::Client, NatsError> {
    connect_as(url, auth, GATEWAY_NAME).await
}

/// Connects under the connection name `name` (the broker's monitoring shows it).
pub async fn connect_as(
    url: &str,
    auth: &NatsAuth,
    name: &str,
) -> Result<async_nats::Client, NatsError> {
    options(auth, name)
        .await?
        .connect(url)
        .await
        .map_err(|e| NatsError::Connect(e.to_string()))
}
