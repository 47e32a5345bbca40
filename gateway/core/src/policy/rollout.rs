//! Rolling a policy out (`policy.md` revision 4): the policy in force, at most one
//! pending (its `not_before` still ahead) and at most one shadow (judging beside the one
//! in force, never deciding). Pure: every transition takes the time as an argument, and
//! makes a new [`Rules`] that the verifier swaps in whole, so no request sees half of a
//! switch.
//!
//! The rules, in the order they are applied to a document that arrives:
//! - its version must be above the one in force and the pending one's (a shadow's also
//!   above the shadow's it replaces), else it is refused and nothing changes;
//! - a shadow replaces the shadow;
//! - a scheduled document whose time is still ahead replaces the pending one, and ends
//!   the shadow (a later document that is not a shadow);
//! - any other takes force at once: the pending one (not above it, by the first rule)
//!   is dropped and the shadow ends.
//!
//! When a pending document's time comes ([`Rules::due`]) it takes force, and the shadow
//! ends ("when a document takes force … the shadow ends").

use std::sync::Arc;

use super::{Policy, PolicyError, ShadowDiff, VenueId};
use crate::status::Color;

/// The policies a gateway holds.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    in_force: Option<Arc<Policy>>,
    pending: Option<Arc<Policy>>,
    shadow: Option<Shadow>,
}

/// A shadow policy, with where each venue of the policy in force sits in its table.
#[derive(Debug, Clone)]
struct Shadow {
    policy: Arc<Policy>,
    /// Indexed by the in-force policy's [`VenueId`]: the shadow's id for the same name
    /// (`None`: the shadow lacks the category, and nothing is compared there).
    venues: Box<[Option<VenueId>]>,
}

impl Shadow {
    fn beside(policy: Arc<Policy>, in_force: Option<&Policy>) -> Shadow {
        let mut venues = Vec::new();
        if let Some(f) = in_force {
            venues = vec![None; f.table.len()];
            for (name, id) in &f.venues {
                venues[usize::from(id.0)] = policy.venue(name);
            }
        }
        Shadow {
            policy,
            venues: venues.into(),
        }
    }
}

/// What a document did when it was offered or when its time came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It is the policy in force now.
    InForce {
        /// Its version.
        version: u64,
    },
    /// It waits for its time.
    Pending {
        /// Its version.
        version: u64,
        /// When it takes force (seconds since the epoch).
        not_before: i64,
    },
    /// It judges in shadow.
    Shadow {
        /// Its version.
        version: u64,
    },
}

impl Rules {
    /// Rules with `in_force` (none: every request is `no_policy` until the feed brings
    /// one), nothing pending, no shadow.
    pub fn new(in_force: Option<Policy>) -> Rules {
        Rules {
            in_force: in_force.map(Arc::new),
            pending: None,
            shadow: None,
        }
    }

    /// The policy in force.
    #[inline]
    pub fn in_force(&self) -> Option<&Policy> {
        self.in_force.as_deref()
    }

    /// The policy in force, shared.
    pub fn in_force_arc(&self) -> Option<Arc<Policy>> {
        self.in_force.clone()
    }

    /// The pending policy, if one waits for its `not_before`.
    pub fn pending(&self) -> Option<&Policy> {
        self.pending.as_deref()
    }

    /// The shadow policy, if one is tried.
    pub fn shadow(&self) -> Option<&Policy> {
        self.shadow.as_ref().map(|s| &*s.policy)
    }

    /// The version a new document must be above: the one in force's and the pending
    /// one's, and for a shadow also the shadow's.
    fn floor(&self, shadow: bool) -> Option<u64> {
        let held = [
            self.in_force.as_deref(),
            self.pending.as_deref(),
            shadow.then(|| self.shadow()).flatten(),
        ];
        held.into_iter().flatten().map(Policy::version).max()
    }

    /// The rules once `p` (verified, root-signed) arrives at `now` (seconds since the
    /// epoch), and what it became; refused, the caller keeps `self`.
    pub fn offer(&self, p: Policy, now: u64) -> Result<(Rules, Change), PolicyError> {
        if let Some(current) = self.floor(p.is_shadow()) {
            if p.version() <= current {
                return Err(PolicyError::NotNewer {
                    got: p.version(),
                    current,
                });
            }
        }
        let version = p.version();
        if p.is_shadow() {
            let shadow = Shadow::beside(Arc::new(p), self.in_force());
            let next = Rules {
                shadow: Some(shadow),
                ..self.clone()
            };
            return Ok((next, Change::Shadow { version }));
        }
        match p.not_before() {
            Some(at) if at > now as i64 => {
                let next = Rules {
                    in_force: self.in_force.clone(),
                    pending: Some(Arc::new(p)),
                    shadow: None,
                };
                Ok((
                    next,
                    Change::Pending {
                        version,
                        not_before: at,
                    },
                ))
            }
            _ => Ok((Rules::new(Some(p)), Change::InForce { version })),
        }
    }

    /// The rules once the pending policy's time has come at `now`, if it has: it takes
    /// force and the shadow ends.
    pub fn due(&self, now: u64) -> Option<(Rules, Change)> {
        let p = self.pending.as_ref()?;
        let at = p.not_before().unwrap_or(i64::MIN);
        if at > now as i64 {
            return None;
        }
        let next = Rules {
            in_force: Some(p.clone()),
            pending: None,
            shadow: None,
        };
        Some((
            next,
            Change::InForce {
                version: p.version(),
            },
        ))
    }

    /// When the pending policy takes force (seconds since the epoch), if one waits.
    pub fn pending_at(&self) -> Option<i64> {
        self.pending.as_ref().and_then(|p| p.not_before())
    }

    /// Whether a shadow policy is tried.
    #[inline]
    pub fn has_shadow(&self) -> bool {
        self.shadow.is_some()
    }

    /// The in-force and shadow table outcomes for `color` at the in-force policy's
    /// `venue`, when a shadow is tried, has the category, and says otherwise.
    #[inline]
    pub fn shadow_diff(&self, venue: VenueId, color: Color) -> Option<ShadowDiff> {
        let s = self.shadow.as_ref()?;
        let from = self.in_force()?.outcome(venue, color);
        let id = (*s.venues.get(usize::from(venue.0))?)?;
        let to = s.policy.outcome(id, color);
        (to != from).then_some(ShadowDiff { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{reference_policy_json, Outcome};

    const NOW: u64 = 1_800_000_000;

    fn doc(version: u64, extra: &[(&str, serde_json::Value)]) -> Policy {
        let mut v: serde_json::Value =
            serde_json::from_str(&reference_policy_json(version)).expect("reference");
        for (k, x) in extra {
            v[*k] = x.clone();
        }
        Policy::from_json(v.to_string().as_bytes()).expect("valid policy")
    }

    fn at(secs: u64) -> serde_json::Value {
        crate::trust::format_time(secs as i64).into()
    }

    fn versions(r: &Rules) -> (Option<u64>, Option<u64>, Option<u64>) {
        (
            r.in_force().map(Policy::version),
            r.pending().map(Policy::version),
            r.shadow().map(Policy::version),
        )
    }

    fn strict(
        mut v: serde_json::Value,
        k: &str,
        x: serde_json::Value,
    ) -> Result<Policy, PolicyError> {
        v[k] = x;
        Policy::from_json(v.to_string().as_bytes())
    }

    #[test]
    fn fields_of_the_wrong_type_or_both_are_refused() {
        let base: serde_json::Value =
            serde_json::from_str(&reference_policy_json(2)).expect("reference");
        assert!(matches!(
            strict(base.clone(), "not_before", 5.into()),
            Err(PolicyError::Json(_))
        ));
        assert!(matches!(
            strict(base.clone(), "not_before", serde_json::Value::Null),
            Err(PolicyError::Json(_))
        ));
        assert!(matches!(
            strict(base.clone(), "not_before", "tomorrow".into()),
            Err(PolicyError::NotBefore)
        ));
        assert!(matches!(
            strict(base.clone(), "shadow", "yes".into()),
            Err(PolicyError::Json(_))
        ));
        let mut both = base.clone();
        both["shadow"] = true.into();
        assert!(matches!(
            strict(both, "not_before", at(NOW)),
            Err(PolicyError::ScheduledShadow)
        ));
        let p = strict(base, "not_before", "2027-01-01T00:00:00Z".into()).expect("scheduled");
        assert_eq!(p.not_before(), Some(1_798_761_600));
        assert!(!p.is_shadow());
    }

    #[test]
    fn a_scheduled_document_waits_for_its_time_then_takes_force() {
        let r = Rules::new(Some(doc(1, &[])));
        let (r, c) = r
            .offer(doc(2, &[("not_before", at(NOW + 60))]), NOW)
            .expect("offered");
        assert_eq!(
            c,
            Change::Pending {
                version: 2,
                not_before: (NOW + 60) as i64
            }
        );
        assert_eq!(versions(&r), (Some(1), Some(2), None));
        assert!(r.due(NOW + 59).is_none());
        let (r, c) = r.due(NOW + 60).expect("due");
        assert_eq!(c, Change::InForce { version: 2 });
        assert_eq!(versions(&r), (Some(2), None, None));
        assert!(r.due(NOW + 61).is_none(), "switched once");
    }

    #[test]
    fn newer_pending_replaces_older_and_a_past_time_takes_force_at_once() {
        let r = Rules::new(Some(doc(1, &[])));
        let (r, _) = r
            .offer(doc(2, &[("not_before", at(NOW + 60))]), NOW)
            .expect("2");
        let (r, _) = r
            .offer(doc(3, &[("not_before", at(NOW + 30))]), NOW)
            .expect("3");
        assert_eq!(versions(&r), (Some(1), Some(3), None));
        assert!(matches!(
            r.offer(doc(3, &[("not_before", at(NOW + 10))]), NOW),
            Err(PolicyError::NotNewer { got: 3, current: 3 })
        ));
        let (r, c) = r
            .offer(doc(4, &[("not_before", at(NOW - 5))]), NOW)
            .expect("4");
        assert_eq!(c, Change::InForce { version: 4 });
        assert_eq!(
            versions(&r),
            (Some(4), None, None),
            "the pending one is dropped"
        );
    }

    #[test]
    fn a_shadow_judges_beside_and_ends_when_a_document_takes_force() {
        let mut table: serde_json::Value =
            serde_json::from_str(&reference_policy_json(5)).expect("reference");
        table["venues"]["supermarket"]["yellow"] = "allow_mask".into();
        table["venues"]["stadium"] =
            serde_json::json!({"green": "allow", "yellow": "deny", "red": "deny"});
        table["shadow"] = true.into();
        let shadow = Policy::from_json(table.to_string().as_bytes()).expect("shadow");
        let r = Rules::new(Some(doc(1, &[])));
        assert!(matches!(
            r.offer(doc(1, &[("shadow", true.into())]), NOW),
            Err(PolicyError::NotNewer { .. })
        ));
        let (r, c) = r.offer(shadow, NOW).expect("shadow");
        assert_eq!(c, Change::Shadow { version: 5 });
        let f = r.in_force().expect("in force");
        let market = f.venue("supermarket").expect("venue");
        assert_eq!(
            r.shadow_diff(market, Color::Yellow),
            Some(ShadowDiff {
                from: Outcome::Deny,
                to: Outcome::AllowMask
            })
        );
        assert_eq!(r.shadow_diff(market, Color::Green), None);
        // A newer shadow must be above the shadow too.
        assert!(r.offer(doc(4, &[("shadow", true.into())]), NOW).is_err());
        // A scheduled document ends it; one in force at once too.
        let (p, _) = r
            .offer(doc(6, &[("not_before", at(NOW + 9))]), NOW)
            .expect("6");
        assert_eq!(versions(&p), (Some(1), Some(6), None));
        let (n, _) = r.offer(doc(6, &[]), NOW).expect("6 now");
        assert_eq!(versions(&n), (Some(6), None, None));
        assert_eq!(n.shadow_diff(market, Color::Yellow), None);
    }

    #[test]
    fn a_shadow_offered_while_one_is_pending_ends_at_the_switch() {
        let r = Rules::new(Some(doc(1, &[])));
        let (r, _) = r
            .offer(doc(2, &[("not_before", at(NOW + 60))]), NOW)
            .expect("2");
        assert!(r.offer(doc(2, &[("shadow", true.into())]), NOW).is_err());
        let (r, _) = r.offer(doc(3, &[("shadow", true.into())]), NOW).expect("3");
        assert_eq!(versions(&r), (Some(1), Some(2), Some(3)));
        let (r, _) = r.due(NOW + 60).expect("due");
        assert_eq!(versions(&r), (Some(2), None, None));
    }

    #[test]
    fn with_nothing_in_force_a_shadow_compares_nothing() {
        let (r, _) = Rules::new(None)
            .offer(doc(3, &[("shadow", true.into())]), NOW)
            .expect("shadow");
        assert!(r.in_force().is_none());
        assert_eq!(r.shadow_diff(VenueId(0), Color::Red), None);
    }
}
