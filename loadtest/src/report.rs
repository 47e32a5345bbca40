//! The run's report: built once from the merged record, then printed as a table and
//! written as JSON (shape: `loadtest/report.schema.json`, checked by a test); the HTML
//! page is drawn from it by [`crate::html`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::churn::Propagation;
use crate::run::Outcome;
use crate::stats::Recorder;
use crate::threshold::Threshold;

/// Identifies the JSON shape.
pub const SCHEMA: &str = "jkm-loadtest-report/1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Second {
    pub t: usize,
    pub requests: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Wrong {
    pub total: u64,
    pub unsafe_allows: u64,
    /// kind → what differed → count.
    pub by_kind: BTreeMap<String, BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PropagationReport {
    pub changes: usize,
    pub missed: u64,
    pub publish_errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// (percentile, ms) points of the distribution, for plots.
    #[serde(default)]
    pub distribution: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdResult {
    pub expr: String,
    pub value: f64,
    pub failed: bool,
}

/// The settings the report echoes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub target: String,
    pub protocol: gateway_client::Protocol,
    pub plain: bool,
    /// `--lean`: answers counted by status, not checked; HTTP/2 and HTTP/3 by the lean
    /// clients.
    pub lean: bool,
    pub model: String,
    pub rate: Option<f64>,
    pub concurrency: Option<usize>,
    pub connections: usize,
    pub codes: String,
    pub pool: usize,
    pub warmup_s: f64,
    /// Streams per connection (HTTP/2, HTTP/3), when given.
    #[serde(default)]
    pub streams: Option<usize>,
    /// The mix as given (`kind=weight,…`), or "default".
    #[serde(default)]
    pub mix: String,
    /// When the measured run began and ended (RFC 3339, UTC).
    #[serde(default)]
    pub started_at: String,
    #[serde(default)]
    pub ended_at: String,
    /// loadtest's version, and the gateway's as its `/healthz` says.
    #[serde(default)]
    pub tool_version: String,
    #[serde(default)]
    pub gateway_version: Option<String>,
    /// Whether every deny's receipt was checked (the loadtest had the feed key and the
    /// gateway said it has one: `api.md` revision 4).
    #[serde(default)]
    pub receipts_checked: bool,
}

/// How `gateway_policy_shadow_total` (summed over its series) moved over the run,
/// warm-up included (`--admin`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShadowReport {
    pub before: u64,
    pub after: u64,
    pub growth: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub run: RunInfo,
    pub duration_s: f64,
    pub requests: u64,
    pub answered: u64,
    pub throughput_rps: f64,
    /// Microseconds, answered requests only.
    pub latency_us: Latency,
    pub statuses: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    pub sent_by_kind: BTreeMap<String, u64>,
    pub wrong: Wrong,
    /// Requests that reused a code of a cold run (the pool wrapped around).
    pub reused_codes: u64,
    /// The generator's own CPU over the measured time, in cores; above 0.85 of one core
    /// per generator thread, the figures may measure the generator.
    pub generator_cpu: Option<f64>,
    pub propagation: Option<PropagationReport>,
    pub timeline: Vec<Second>,
    /// (percentile, µs) points of the distribution, for plots.
    pub distribution: Vec<(f64, u64)>,
    pub thresholds: Vec<ThresholdResult>,
    pub passed: bool,
    /// The shadow policy's counter over the run, with `--admin`.
    #[serde(default)]
    pub shadow: Option<ShadowReport>,
}

/// The quantiles of the distributions in the report.
const QUANTILES: [f64; 13] = [
    0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0,
];

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

impl Report {
    pub fn build(
        run: RunInfo,
        outcome: Outcome,
        propagation: Option<Propagation>,
        thresholds: &[Threshold],
    ) -> Report {
        let r: Recorder = outcome.recorder;
        let h = &r.hist;
        let answered = h.len();
        let failed: u64 = r.errors.values().sum();
        let requests = answered + failed;
        let secs = outcome.elapsed.as_secs_f64().max(1e-9);
        let non_200: u64 = r
            .statuses
            .iter()
            .filter(|(s, _)| **s != 200)
            .map(|(_, n)| n)
            .sum();
        let mut by_kind: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for ((k, what), n) in &r.wrong {
            *by_kind
                .entry(k.name().to_owned())
                .or_default()
                .entry((*what).to_owned())
                .or_default() += n;
        }
        let wrong_total: u64 = r.wrong.values().sum();
        let propagation = propagation.map(|mut p| {
            p.latencies_ms.sort_by(|a, b| a.total_cmp(b));
            PropagationReport {
                changes: p.latencies_ms.len(),
                missed: p.missed,
                publish_errors: p.publish_errors,
                p50_ms: pct(&p.latencies_ms, 0.5),
                p99_ms: pct(&p.latencies_ms, 0.99),
                max_ms: p.latencies_ms.last().copied().unwrap_or(0.0),
                distribution: QUANTILES
                    .iter()
                    .map(|q| (q * 100.0, pct(&p.latencies_ms, *q)))
                    .collect(),
            }
        });
        let latency = Latency {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        };
        let distribution = QUANTILES
            .iter()
            .map(|q| (q * 100.0, h.value_at_quantile(*q)))
            .collect();
        let timeline = r
            .timeline
            .iter()
            .enumerate()
            .map(|(t, s)| Second {
                t,
                requests: s.requests,
                errors: s.errors,
                p50_us: s.hist.value_at_quantile(0.5),
                p99_us: s.hist.value_at_quantile(0.99),
            })
            .collect();
        let throughput = answered as f64 / secs;
        let mut report = Report {
            schema: SCHEMA.into(),
            run,
            duration_s: secs,
            requests,
            answered,
            throughput_rps: throughput,
            latency_us: latency,
            statuses: r
                .statuses
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            errors: r
                .errors
                .iter()
                .map(|(k, v)| (k.name().to_owned(), *v))
                .collect(),
            sent_by_kind: r
                .sent
                .iter()
                .map(|(k, v)| (k.name().to_owned(), *v))
                .collect(),
            wrong: Wrong {
                total: wrong_total,
                unsafe_allows: r.unsafe_allows,
                by_kind,
            },
            reused_codes: outcome.reused,
            generator_cpu: outcome.generator_cpu,
            propagation,
            timeline,
            distribution,
            thresholds: Vec::new(),
            passed: true,
            shadow: None,
        };
        let errors = (failed + non_200) as f64;
        report.thresholds = thresholds
            .iter()
            .map(|t| {
                let p = report.propagation.as_ref();
                let value = match t.metric.as_str() {
                    "p50" => report.latency_us.p50 as f64,
                    "p90" => report.latency_us.p90 as f64,
                    "p99" => report.latency_us.p99 as f64,
                    "p999" => report.latency_us.p999 as f64,
                    "max" => report.latency_us.max as f64,
                    "rps" => report.throughput_rps,
                    "requests" => report.requests as f64,
                    "errors" => errors,
                    "wrong" => report.wrong.total as f64,
                    "unsafe" => report.wrong.unsafe_allows as f64,
                    "propagation_p50" => p.map_or(0.0, |p| p.p50_ms),
                    "propagation_p99" => p.map_or(0.0, |p| p.p99_ms),
                    "propagation_max" => p.map_or(0.0, |p| p.max_ms),
                    "missed" => p.map_or(0.0, |p| p.missed as f64),
                    _ => f64::NAN,
                };
                ThresholdResult {
                    expr: t.text.clone(),
                    value,
                    failed: t.holds(value),
                }
            })
            .collect();
        // A must-deny code allowed fails the run whatever the thresholds say.
        report.passed =
            report.wrong.unsafe_allows == 0 && report.thresholds.iter().all(|t| !t.failed);
        report
    }
}
