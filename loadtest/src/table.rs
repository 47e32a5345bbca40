//! The end-of-run table: the report as text, for the terminal.

use std::fmt::Write as _;

use crate::report::Report;

impl Report {
    /// The end-of-run table.
    pub fn table(&self) -> String {
        let l = &self.latency_us;
        let ms = |us: u64| format!("{:.3} ms", us as f64 / 1000.0);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} {} to {} for {:.1} s ({} connections, {} codes{})",
            format!("{:?}", self.run.protocol).to_uppercase(),
            self.run.model,
            self.run.target,
            self.duration_s,
            self.run.connections,
            self.run.codes,
            if self.run.plain { ", plaintext" } else { "" }
        );
        let _ = writeln!(s, "  throughput      {:>12.0} req/s", self.throughput_rps);
        if let Some(c) = self.generator_cpu {
            let _ = writeln!(s, "  generator CPU   {:>12.2} cores (this process)", c);
        }
        let _ = writeln!(
            s,
            "  requests        {:>12}  (answered {})",
            self.requests, self.answered
        );
        for (name, v) in [
            ("p50", l.p50),
            ("p90", l.p90),
            ("p99", l.p99),
            ("p99.9", l.p999),
            ("max", l.max),
        ] {
            let _ = writeln!(s, "  latency {name:<7} {:>12}", ms(v));
        }
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = writeln!(s, "  statuses        {}", statuses.join(", "));
        if !self.errors.is_empty() {
            let e: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(s, "  errors          {}", e.join(", "));
        }
        let _ = writeln!(
            s,
            "  wrong decisions {:>12}  (must-deny allowed: {})",
            self.wrong.total, self.wrong.unsafe_allows
        );
        for (k, m) in &self.wrong.by_kind {
            let parts: Vec<String> = m.iter().map(|(w, n)| format!("{w} {n}")).collect();
            let _ = writeln!(s, "    {k:<14} {}", parts.join(", "));
        }
        let _ = writeln!(
            s,
            "  receipts        {}",
            if self.run.receipts_checked {
                "every deny's checked for its subject"
            } else {
                "not checked (no feed key here, or the gateway has none)"
            }
        );
        if let Some(sh) = &self.shadow {
            let _ = writeln!(
                s,
                "  shadow policy   {} judgements counted otherwise ({} -> {})",
                sh.growth, sh.before, sh.after
            );
        }
        if let Some(p) = &self.propagation {
            let _ = writeln!(
                s,
                "  propagation     p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} changes, {} missed)",
                p.p50_ms, p.p99_ms, p.max_ms, p.changes, p.missed
            );
        }
        for t in &self.thresholds {
            let _ = writeln!(
                s,
                "  threshold {:<20} {} (measured {:.3})",
                t.expr,
                if t.failed { "FAILED" } else { "ok" },
                t.value
            );
        }
        let _ = writeln!(
            s,
            "  result          {}",
            if self.passed { "PASS" } else { "FAIL" }
        );
        s
    }
}
