//! `--fail-if` thresholds: `METRIC OP VALUE`, e.g. `p99>2ms`, `wrong>0`, `rps<5000`,
//! `errors>=1`, `propagation_p99>250ms`. A threshold that holds fails the run (exit 1).
//!
//! Metrics: `p50`, `p90`, `p99`, `p999`, `max` (latency, with a unit `us`, `ms` or `s`;
//! a bare number is µs), `rps`, `requests`, `errors` (requests with no answer or a status
//! other than 200), `wrong` (wrong decisions), `unsafe` (must-deny codes allowed),
//! `propagation_p50`, `propagation_p99`, `propagation_max` (with a unit; bare is ms),
//! `missed` (changes never seen).

use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

/// One parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub text: String,
    pub metric: String,
    op: Op,
    /// In the metric's base unit (µs for latency, ms for propagation).
    pub value: f64,
}

const LATENCY: [&str; 5] = ["p50", "p90", "p99", "p999", "max"];
const PROPAGATION: [&str; 3] = ["propagation_p50", "propagation_p99", "propagation_max"];
const COUNTS: [&str; 6] = ["rps", "requests", "errors", "wrong", "unsafe", "missed"];

/// Why a `--fail-if` value was refused (each names the value as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    /// No comparison in it.
    #[error("{0:?}: expected METRIC>VALUE (or <, >=, <=)")]
    NoComparison(String),
    /// The value is not a number.
    #[error("{0:?}: {1:?} is not a number")]
    NotANumber(String, String),
    /// A unit that is not `us`, `ms` or `s`.
    #[error("{0:?}: unknown unit {1:?} (us, ms, s)")]
    UnknownUnit(String, String),
    /// A unit on a count.
    #[error("{0:?}: {1} takes no unit")]
    NoUnitFor(String, String),
    /// A metric that is not a latency, a propagation figure or a count.
    #[error("{0:?}: unknown metric {1:?}")]
    UnknownMetric(String, String),
}

impl FromStr for Threshold {
    type Err = ThresholdError;

    fn from_str(s: &str) -> Result<Threshold, ThresholdError> {
        let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let (pos, op, len) = [(">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt)]
            .iter()
            .find_map(|(sym, op)| t.find(sym).map(|p| (p, *op, sym.len())))
            .ok_or_else(|| ThresholdError::NoComparison(s.to_owned()))?;
        let metric = t[..pos].to_owned();
        let raw = &t[pos + len..];
        let (num, unit) = raw
            .find(|c: char| c.is_ascii_alphabetic())
            .map_or((raw, ""), |i| raw.split_at(i));
        let n: f64 = num
            .parse()
            .map_err(|_| ThresholdError::NotANumber(s.to_owned(), num.to_owned()))?;
        let value = if LATENCY.contains(&metric.as_str()) {
            n * match unit {
                "" | "us" => 1.0,
                "ms" => 1e3,
                "s" => 1e6,
                u => return Err(ThresholdError::UnknownUnit(s.to_owned(), u.to_owned())),
            }
        } else if PROPAGATION.contains(&metric.as_str()) {
            n * match unit {
                "" | "ms" => 1.0,
                "us" => 1e-3,
                "s" => 1e3,
                u => return Err(ThresholdError::UnknownUnit(s.to_owned(), u.to_owned())),
            }
        } else if COUNTS.contains(&metric.as_str()) {
            if !unit.is_empty() {
                return Err(ThresholdError::NoUnitFor(s.to_owned(), metric));
            }
            n
        } else {
            return Err(ThresholdError::UnknownMetric(s.to_owned(), metric));
        };
        Ok(Threshold {
            text: s.to_owned(),
            metric,
            op,
            value,
        })
    }
}

impl Threshold {
    /// Whether the threshold holds (the run fails) for the metric's measured value.
    pub fn holds(&self, measured: f64) -> bool {
        match self.op {
            Op::Gt => measured > self.value,
            Op::Ge => measured >= self.value,
            Op::Lt => measured < self.value,
            Op::Le => measured <= self.value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_operators() {
        let t: Threshold = "p99>2ms".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.metric.as_str(), t.value), ("p99", 2000.0));
        assert!(t.holds(2001.0) && !t.holds(2000.0));
        let t: Threshold = "rps < 5000".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(t.holds(4999.0) && !t.holds(5000.0));
        let t: Threshold = "wrong>=1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(t.holds(1.0));
        let t: Threshold = "propagation_p99>0.25s"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.value, 250.0);
        for bad in ["p99", "p99>2parsecs", "speed>1", "wrong>1ms", "p99>fast"] {
            assert!(bad.parse::<Threshold>().is_err(), "{bad}");
        }
    }
}
