//! The closed set of decision reasons. Each label is the spec's string, so it is safe as
//! a metric label and a response field (never built from input).

/// Why a decision came out as it did (`token.md` checks and `policy.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Reason {
    /// Allowed, or decided by the policy with nothing to add.
    #[default]
    Ok,
    /// The code does not decode (Base45, CBOR, COSE or claims).
    Malformed,
    /// No trust-list key has the token's `kid`.
    UnknownKey,
    /// The key was revoked by the root.
    KeyRevoked,
    /// The token's algorithm is not its key's.
    AlgMismatch,
    /// The signature does not verify.
    BadSignature,
    /// `iss` is not the key's issuer.
    IssuerMismatch,
    /// `iat` is outside the key's validity window.
    KeyNotValidAtIssue,
    /// Issued in the future (beyond the skew).
    NotYetValid,
    /// Expired (beyond the skew).
    Expired,
    /// `exp - iat` is longer than the limit.
    ValidityTooLong,
    /// The token id was revoked by the feed.
    TokenRevoked,
    /// A newer status turned allow into deny or deny into allow.
    StatusChanged,
    /// The policy denies this color at this venue (yellow at a school).
    VenueRestricted,
    /// Red is denied.
    RedCode,
}

impl Reason {
    /// Every reason, for metrics registration.
    pub const ALL: [Reason; 15] = [
        Reason::Ok,
        Reason::Malformed,
        Reason::UnknownKey,
        Reason::KeyRevoked,
        Reason::AlgMismatch,
        Reason::BadSignature,
        Reason::IssuerMismatch,
        Reason::KeyNotValidAtIssue,
        Reason::NotYetValid,
        Reason::Expired,
        Reason::ValidityTooLong,
        Reason::TokenRevoked,
        Reason::StatusChanged,
        Reason::VenueRestricted,
        Reason::RedCode,
    ];

    /// The spec's string.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::Malformed => "malformed",
            Reason::UnknownKey => "unknown_key",
            Reason::KeyRevoked => "key_revoked",
            Reason::AlgMismatch => "alg_mismatch",
            Reason::BadSignature => "bad_signature",
            Reason::IssuerMismatch => "issuer_mismatch",
            Reason::KeyNotValidAtIssue => "key_not_valid_at_issue",
            Reason::NotYetValid => "not_yet_valid",
            Reason::Expired => "expired",
            Reason::ValidityTooLong => "validity_too_long",
            Reason::TokenRevoked => "token_revoked",
            Reason::StatusChanged => "status_changed",
            Reason::VenueRestricted => "venue_restricted",
            Reason::RedCode => "red_code",
        }
    }

    /// Whether this reason comes from steps 1 to 8 (the token itself failed).
    pub fn is_token_failure(self) -> bool {
        !matches!(
            self,
            Reason::Ok | Reason::StatusChanged | Reason::VenueRestricted | Reason::RedCode
        )
    }
}
