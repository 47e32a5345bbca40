//! The province-wide policy (`policy.md`): which venue categories admit which colors, and
//! the card-check conditions. A policy comes only from a document signed by the root key
//! (or, in development mode, an unsigned file that the server announces loudly), and is
//! replaced as a whole: readers never see half of one. A document may be scheduled
//! (`not_before`) or tried in shadow (`shadow`): [`rollout`] holds the policies of a
//! gateway and the rules between them.

pub mod rollout;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Deserializer};

use crate::decide::reason::Reason;
use crate::status::Color;

/// The categories every policy must hold (`policy.md`, "Decisions at gates").
pub const REQUIRED_VENUES: [&str; 19] = [
    "school",
    "elder_care",
    "welfare_home",
    "mental_health",
    "prison",
    "wholesale_market",
    "farmers_market",
    "supermarket",
    "library",
    "museum",
    "art_gallery",
    "exhibition_hall",
    "cinema",
    "theater",
    "arcade",
    "bus",
    "taxi",
    "metro",
    "public",
];

/// Venue byte of a category that is not in the policy table of `policy.md` (receipts).
pub const OTHER_VENUE: u8 = 255;

/// A venue category's position in the policy table (`school` 0 … `public` 18), or
/// [`OTHER_VENUE`]: the venue byte of a receipt (`api.md` revision 4).
pub fn venue_code(venue: &str) -> u8 {
    REQUIRED_VENUES
        .iter()
        .position(|v| *v == venue)
        .map_or(OTHER_VENUE, |i| i as u8)
}

/// The venue category of a receipt's venue byte (`None` for [`OTHER_VENUE`]).
pub fn venue_of(code: u8) -> Option<&'static str> {
    REQUIRED_VENUES.get(usize::from(code)).copied()
}

/// What the table says for one color at one venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Admitted.
    Allow,
    /// Admitted with a mask.
    AllowMask,
    /// Refused.
    Deny,
}

impl Outcome {
    /// `allow`, `allow_mask` or `deny`, as documents and metrics write it.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::AllowMask => "allow_mask",
            Outcome::Deny => "deny",
        }
    }

    fn from_name(s: &str) -> Option<Outcome> {
        match s {
            "allow" => Some(Outcome::Allow),
            "allow_mask" => Some(Outcome::AllowMask),
            "deny" => Some(Outcome::Deny),
            _ => None,
        }
    }
}

/// Conditions attached to an allow, as a set; listed `mask` before `short_stay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Conditions(u8);

impl Conditions {
    /// No condition.
    pub const NONE: Conditions = Conditions(0);
    /// A mask must be worn.
    pub const MASK: Conditions = Conditions(1);
    /// A short stay only.
    pub const SHORT_STAY: Conditions = Conditions(2);

    /// Both sets of conditions.
    pub fn union(self, other: Conditions) -> Conditions {
        Conditions(self.0 | other.0)
    }

    /// Whether every condition of `other` is in `self`.
    pub fn contains(self, other: Conditions) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether there is no condition.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names in the order the API lists them.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        [
            (Conditions::MASK, "mask"),
            (Conditions::SHORT_STAY, "short_stay"),
        ]
        .into_iter()
        .filter(move |(c, _)| self.contains(*c))
        .map(|(_, n)| n)
    }

    fn from_name(s: &str) -> Option<Conditions> {
        match s {
            "mask" => Some(Conditions::MASK),
            "short_stay" => Some(Conditions::SHORT_STAY),
            _ => None,
        }
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verdict {
    /// Admitted.
    Allow,
    #[default]
    /// Refused.
    Deny,
}

impl Verdict {
    /// `allow` or `deny`, as the API writes it.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        }
    }
}

/// The decision for one person (holder, companion or card).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Judgement {
    /// Allow or deny.
    pub verdict: Verdict,
    /// The effective color; `None` where the token itself failed (steps 1 to 8).
    pub color: Option<Color>,
    /// Why (`ok` when admitted).
    pub reason: Reason,
    /// Empty on a deny.
    pub conditions: Conditions,
    /// On a deny, with a receipt key: the receipt (`api.md` revision 4).
    pub receipt: Option<crate::decide::receipt::Receipt>,
    /// Where a shadow policy's table says otherwise than the one in force's (`policy.md`
    /// revision 4): both outcomes, for the gateway to count. Never part of an answer.
    pub shadow: Option<ShadowDiff>,
}

/// The table outcomes of the policy in force and of the shadow one, which differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShadowDiff {
    /// The policy in force's outcome.
    pub from: Outcome,
    /// The shadow policy's outcome.
    pub to: Outcome,
}

impl Judgement {
    /// A token that failed steps 1 to 8.
    pub fn failed(reason: Reason) -> Self {
        Judgement {
            verdict: Verdict::Deny,
            color: None,
            reason,
            conditions: Conditions::NONE,
            receipt: None,
            shadow: None,
        }
    }
}

/// Index of a venue category in the policy in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VenueId(u16);

#[derive(Deserialize)]
struct VenueRule {
    green: String,
    yellow: String,
    red: String,
}

#[derive(Deserialize)]
struct CardRule {
    conditions: Vec<String>,
    short_stay_except: Vec<String>,
}

#[derive(Deserialize)]
struct PolicyDoc {
    version: u64,
    venues: BTreeMap<String, VenueRule>,
    card: CardRule,
    /// RFC 3339; `null` is the wrong type, not an absent field.
    #[serde(default, deserialize_with = "present")]
    not_before: Option<String>,
    #[serde(default, deserialize_with = "present")]
    shadow: Option<bool>,
}

/// A field that, when present, must have its type (`null` refused).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Why a policy document is refused (the policy in force stays).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy is not valid JSON of the policy shape: {0}")]
    /// Not JSON of the policy's shape.
    Json(#[from] serde_json::Error),
    #[error("policy lacks the venue category {0:?}")]
    /// A venue category the policy must have is missing.
    MissingVenue(&'static str),
    #[error("policy outcome {0:?} is not allow, allow_mask or deny")]
    /// An outcome that is not `allow`, `allow_mask` or `deny`.
    Outcome(String),
    #[error("policy card condition {0:?} is unknown")]
    /// A condition that is not known.
    Condition(String),
    #[error("policy card short_stay_except names {0:?}, which is not a venue")]
    /// A short-stay venue that is not a venue of the policy.
    ShortStayVenue(String),
    #[error("policy not_before is not an RFC 3339 time")]
    /// `not_before` is not an RFC 3339 time.
    NotBefore,
    #[error("policy has both not_before and shadow")]
    /// A document both scheduled and a shadow.
    ScheduledShadow,
    #[error("policy is a shadow, and a shadow never decides: the policy a gateway starts on must not be one")]
    /// A shadow document where one must decide (the policy file a gateway starts on).
    ShadowOnly,
    #[error("policy has too many venue categories")]
    /// More venues than the limit.
    TooManyVenues,
    #[error("root signature: {0}")]
    /// The root signature does not verify.
    Signature(#[from] crate::trust::RootDocError),
    #[error("policy version {got} is not above the one in force ({current})")]
    /// Not newer than the policy in force.
    NotNewer {
        /// The version offered.
        got: u64,
        /// The version in force.
        current: u64,
    },
}

/// A validated policy, compiled for lookups.
#[derive(Debug, Clone)]
pub struct Policy {
    version: u64,
    /// When it takes force (seconds since the epoch), if scheduled.
    not_before: Option<i64>,
    /// Whether it is a shadow (never decides).
    shadow: bool,
    venues: HashMap<Box<str>, VenueId>,
    /// Per venue: outcome for green, yellow, red.
    table: Vec<[Outcome; 3]>,
    card_conditions: Conditions,
    /// Per venue: whether a card allow there gets `short_stay`.
    card_short_stay: Vec<bool>,
    /// The document as accepted (its JSON payload).
    document: Box<[u8]>,
    /// The root-signed COSE_Sign1 (base64url) it came from; `None` for an unsigned
    /// development policy. Snapshots keep this, and verify it again on load.
    signed: Option<Box<str>>,
}

impl Policy {
    /// Parses and validates a policy document (the JSON payload).
    pub fn from_json(bytes: &[u8]) -> Result<Policy, PolicyError> {
        let doc: PolicyDoc = serde_json::from_slice(bytes)?;
        if doc.not_before.is_some() && doc.shadow.is_some() {
            return Err(PolicyError::ScheduledShadow);
        }
        let not_before = match &doc.not_before {
            Some(t) => Some(crate::trust::parse_time(t).ok_or(PolicyError::NotBefore)?),
            None => None,
        };
        for v in REQUIRED_VENUES {
            if !doc.venues.contains_key(v) {
                return Err(PolicyError::MissingVenue(v));
            }
        }
        if doc.venues.len() > usize::from(u16::MAX) {
            return Err(PolicyError::TooManyVenues);
        }
        let outcome = |s: &str| Outcome::from_name(s).ok_or_else(|| PolicyError::Outcome(s.into()));
        let mut venues = HashMap::with_capacity(doc.venues.len());
        let mut table = Vec::with_capacity(doc.venues.len());
        for (i, (name, rule)) in doc.venues.iter().enumerate() {
            venues.insert(name.as_str().into(), VenueId(i as u16));
            table.push([
                outcome(&rule.green)?,
                outcome(&rule.yellow)?,
                outcome(&rule.red)?,
            ]);
        }
        let mut card_conditions = Conditions::NONE;
        for c in &doc.card.conditions {
            let c2 = Conditions::from_name(c).ok_or_else(|| PolicyError::Condition(c.clone()))?;
            card_conditions = card_conditions.union(c2);
        }
        let mut card_short_stay = vec![true; table.len()];
        for v in &doc.card.short_stay_except {
            let VenueId(i) = *venues
                .get(v.as_str())
                .ok_or_else(|| PolicyError::ShortStayVenue(v.clone()))?;
            card_short_stay[usize::from(i)] = false;
        }
        Ok(Policy {
            version: doc.version,
            not_before,
            shadow: doc.shadow == Some(true),
            venues,
            table,
            card_conditions,
            card_short_stay,
            document: bytes.into(),
            signed: None,
        })
    }

    /// The JSON document this policy was read from.
    pub fn document(&self) -> &[u8] {
        &self.document
    }

    /// Opens a root-signed policy (file form: COSE_Sign1, base64url, one line).
    pub fn from_signed(
        signed_b64: &str,
        root: &crate::trust::RootKey,
    ) -> Result<Policy, PolicyError> {
        let payload = root.open(signed_b64)?;
        Ok(Policy::from_json(&payload)?.with_signed(signed_b64))
    }

    /// Records the root-signed form whose payload this policy was parsed from.
    pub(crate) fn with_signed(mut self, signed_b64: &str) -> Policy {
        self.signed = Some(signed_b64.trim().into());
        self
    }

    /// The root-signed form it came from, if it was signed.
    pub fn signed(&self) -> Option<&str> {
        self.signed.as_deref()
    }

    /// The policy's version (`policy_version` in answers).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// When it takes force (seconds since the epoch), if it is scheduled (`not_before`).
    pub fn not_before(&self) -> Option<i64> {
        self.not_before
    }

    /// Whether it is a shadow document (`"shadow": true`): it never decides.
    pub fn is_shadow(&self) -> bool {
        self.shadow
    }

    /// The venue category, if the policy has it.
    #[inline]
    pub fn venue(&self, name: &str) -> Option<VenueId> {
        self.venues.get(name).copied()
    }

    /// Every category name.
    pub fn venue_names(&self) -> impl Iterator<Item = &str> {
        self.venues.keys().map(|k| &**k)
    }

    /// What the table says for `color` at `venue` (before card conditions).
    #[inline]
    pub fn outcome(&self, venue: VenueId, color: Color) -> Outcome {
        self.table[usize::from(venue.0)][color as usize]
    }

    /// The table's decision for `color` at `venue`.
    pub fn judge(&self, venue: VenueId, color: Color) -> Judgement {
        let outcome = self.outcome(venue, color);
        let (verdict, reason, conditions) = match outcome {
            Outcome::Allow => (Verdict::Allow, Reason::Ok, Conditions::NONE),
            Outcome::AllowMask => (Verdict::Allow, Reason::Ok, Conditions::MASK),
            Outcome::Deny if color == Color::Red => {
                (Verdict::Deny, Reason::RedCode, Conditions::NONE)
            }
            Outcome::Deny => (Verdict::Deny, Reason::VenueRestricted, Conditions::NONE),
        };
        Judgement {
            verdict,
            color: Some(color),
            reason,
            conditions,
            receipt: None,
            shadow: None,
        }
    }

    /// A card check's decision: the table's, with the card conditions added to an allow,
    /// and `short_stay` too at venues outside `short_stay_except`.
    pub fn judge_card(&self, venue: VenueId, color: Color) -> Judgement {
        let mut j = self.judge(venue, color);
        if j.verdict == Verdict::Allow {
            j.conditions = j.conditions.union(self.card_conditions);
            if self.card_short_stay[usize::from(venue.0)] {
                j.conditions = j.conditions.union(Conditions::SHORT_STAY);
            }
        }
        j
    }
}

/// The policy table of `policy.md` as a JSON document, version `version`: the default a
/// development setup signs, and a reference for tests.
pub fn reference_policy_json(version: u64) -> String {
    let mut venues = serde_json::Map::new();
    for v in REQUIRED_VENUES {
        let (g, y, r) = match v {
            "bus" | "taxi" | "metro" => ("allow", "allow_mask", "deny"),
            "public" => ("allow", "allow", "deny"),
            _ => ("allow", "deny", "deny"),
        };
        venues.insert(
            v.to_owned(),
            serde_json::json!({"green": g, "yellow": y, "red": r}),
        );
    }
    serde_json::json!({
        "version": version,
        "venues": venues,
        "card": {"conditions": ["mask"], "short_stay_except": ["bus", "taxi", "metro"]},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> Policy {
        Policy::from_json(reference_policy_json(7).as_bytes()).unwrap()
    }

    #[test]
    fn receipt_venue_bytes_follow_the_table() {
        assert_eq!(venue_code("school"), 0);
        assert_eq!(venue_code("supermarket"), 7);
        assert_eq!(venue_code("metro"), 17);
        assert_eq!(venue_code("public"), 18);
        assert_eq!(venue_code("stadium"), OTHER_VENUE);
        assert_eq!(venue_of(18), Some("public"));
        assert_eq!(venue_of(OTHER_VENUE), None);
    }

    #[test]
    fn table_of_policy_md() {
        let p = reference();
        let school = p.venue("school").unwrap();
        assert_eq!(p.judge(school, Color::Green).verdict, Verdict::Allow);
        assert_eq!(
            p.judge(school, Color::Yellow).reason,
            Reason::VenueRestricted
        );
        assert_eq!(p.judge(school, Color::Red).reason, Reason::RedCode);
        let bus = p.venue("bus").unwrap();
        assert_eq!(p.judge(bus, Color::Yellow).conditions, Conditions::MASK);
        assert!(p.venue("airport").is_none());
    }

    #[test]
    fn card_conditions() {
        let p = reference();
        let bus = p.venue("bus").unwrap();
        let museum = p.venue("museum").unwrap();
        let j = p.judge_card(bus, Color::Green);
        assert_eq!(j.conditions.names().collect::<Vec<_>>(), ["mask"]);
        let j = p.judge_card(museum, Color::Green);
        assert_eq!(
            j.conditions.names().collect::<Vec<_>>(),
            ["mask", "short_stay"]
        );
        let j = p.judge_card(museum, Color::Yellow);
        assert_eq!(j.verdict, Verdict::Deny);
        assert!(j.conditions.is_empty());
    }

    #[test]
    fn refuses_incomplete_documents() {
        let mut doc: serde_json::Value = serde_json::from_str(&reference_policy_json(1)).unwrap();
        doc["venues"].as_object_mut().unwrap().remove("prison");
        assert!(matches!(
            Policy::from_json(doc.to_string().as_bytes()),
            Err(PolicyError::MissingVenue("prison"))
        ));
        let mut doc: serde_json::Value = serde_json::from_str(&reference_policy_json(1)).unwrap();
        doc["venues"]["bus"]["red"] = "maybe".into();
        assert!(matches!(
            Policy::from_json(doc.to_string().as_bytes()),
            Err(PolicyError::Outcome(_))
        ));
        let mut doc: serde_json::Value = serde_json::from_str(&reference_policy_json(1)).unwrap();
        doc.as_object_mut().unwrap().remove("card");
        assert!(Policy::from_json(doc.to_string().as_bytes()).is_err());
    }
}
