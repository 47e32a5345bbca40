//! Why a request got no HTTP answer.

/// The phase in which a request failed; what `loadtest` counts errors by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// No connection (TCP, TLS, QUIC or the HTTP handshake).
    Connect,
    /// The request could not be sent, or no answer head came back.
    Send,
    /// The answer's body broke off.
    Body,
    /// No whole answer within the target's timeout.
    Timeout,
}

impl Phase {
    /// The phase's name in reports and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Send => "send",
            Phase::Body => "body",
            Phase::Timeout => "timeout",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed request: its phase and what went wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{phase}: {detail}")]
pub struct ClientError {
    /// Where it failed.
    pub phase: Phase,
    /// The underlying error, for people.
    pub detail: String,
}

impl ClientError {
    /// A failure in `phase` caused by `e`.
    pub fn new(phase: Phase, e: impl std::fmt::Display) -> ClientError {
        ClientError {
            phase,
            detail: e.to_string(),
        }
    }
}

/// `result.at(phase)`: any error as a failure in `phase`.
pub(crate) trait At<T> {
    fn at(self, phase: Phase) -> Result<T, ClientError>;
}

impl<T, E: std::fmt::Display> At<T> for Result<T, E> {
    fn at(self, phase: Phase) -> Result<T, ClientError> {
        self.map_err(|e| ClientError::new(phase, e))
    }
}
