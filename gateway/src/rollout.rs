//! Scheduled and shadow policies at the gateway (`policy.md` revision 4): the clock that
//! puts a pending policy in force at its `not_before`, what each change logs (once) and
//! the gauges of the versions held. The rules themselves are the core's
//! (`gateway_core::policy::rollout`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway_core::policy::rollout::{Change, Rules};
use gateway_core::trust::format_time;

use crate::app::App;

/// The longest the clock sleeps between looks at the pending policy: a document that
/// arrives with a time less than this ahead is still switched at its time, give or take
/// a few milliseconds of the timer's own slack.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// Switches a pending policy in force when the clock reaches its `not_before`, for as
/// long as the gateway runs.
pub async fn run(app: Arc<App>) {
    loop {
        tokio::time::sleep(until_due(&app.verifier.rules(), app.fixed_now.is_some())).await;
        if let Some(change) = app.verifier.switch_due(app.now()) {
            changed(&app, change);
        }
    }
}

/// How long to sleep before the next look: up to the pending policy's time, at most
/// [`LOOK_EVERY`].
fn until_due(rules: &Rules, fixed_clock: bool) -> Duration {
    let Some(at) = rules.pending_at() else {
        return LOOK_EVERY;
    };
    if fixed_clock {
        return LOOK_EVERY;
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let at_ms = i128::from(at).saturating_mul(1000);
    let left = at_ms - now_ms as i128;
    Duration::from_millis(left.clamp(0, LOOK_EVERY.as_millis() as i128) as u64)
}

/// Logs a change of the policies held (once: only the call that made it reports it) and
/// sets the gauges.
pub fn changed(app: &App, change: Change) {
    match change {
        Change::InForce { version } => {
            tracing::info!(version, "policy in force")
        }
        Change::Pending {
            version,
            not_before,
        } => {
            tracing::info!(version, not_before = %format_time(not_before), "policy pending: takes force at its not_before")
        }
        Change::Shadow { version } => {
            tracing::info!(
                version,
                "policy in shadow: judged beside the one in force, never deciding"
            )
        }
    }
    gauges(&app.verifier.rules());
}

/// `gateway_policy_version`, `gateway_policy_pending_version`,
/// `gateway_policy_pending_not_before_seconds` and `gateway_policy_shadow_version` (0:
/// none).
pub fn gauges(rules: &Rules) {
    let v = |p: Option<&gateway_core::Policy>| p.map_or(0.0, |p| p.version() as f64);
    metrics::gauge!("gateway_policy_version").set(v(rules.in_force()));
    metrics::gauge!("gateway_policy_pending_version").set(v(rules.pending()));
    metrics::gauge!("gateway_policy_pending_not_before_seconds")
        .set(rules.pending_at().map_or(0.0, |t| t as f64));
    metrics::gauge!("gateway_policy_shadow_version").set(v(rules.shadow()));
}

/// The revision-4 fields of `/readyz` and `/v1/status`: `"pending_policy"` (version and
/// time, or null) and `"shadow_policy_version"` (or null).
pub fn json_fields(rules: &Rules) -> (serde_json::Value, serde_json::Value) {
    let pending = match (rules.pending(), rules.pending_at()) {
        (Some(p), Some(at)) => {
            serde_json::json!({"version": p.version(), "not_before": format_time(at)})
        }
        _ => serde_json::Value::Null,
    };
    let shadow = rules
        .shadow()
        .map_or(serde_json::Value::Null, |p| p.version().into());
    (pending, shadow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_at_most_a_look_and_not_past_the_time() {
        let rules = Rules::new(None);
        assert_eq!(until_due(&rules, false), LOOK_EVERY);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs() as i64;
        let doc = |at: i64| {
            let mut v: serde_json::Value =
                serde_json::from_str(&gateway_core::policy::reference_policy_json(2))
                    .expect("reference");
            v["not_before"] = format_time(at).into();
            gateway_core::Policy::from_json(v.to_string().as_bytes()).expect("policy")
        };
        let base = Rules::new(Some(
            gateway_core::Policy::from_json(
                gateway_core::policy::reference_policy_json(1).as_bytes(),
            )
            .expect("policy"),
        ));
        let (far, _) = base.offer(doc(now + 3600), now as u64).expect("pending");
        assert_eq!(until_due(&far, false), LOOK_EVERY);
        let (near, _) = base.offer(doc(now + 1), now as u64).expect("pending");
        assert!(until_due(&near, false) <= LOOK_EVERY);
        let (pending, shadow) = json_fields(&near);
        assert_eq!(pending["version"], 2);
        assert_eq!(pending["not_before"], format_time(now + 1));
        assert!(shadow.is_null());
    }
}
