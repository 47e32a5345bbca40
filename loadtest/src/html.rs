//! The report as a page for people: the run's metadata, throughput and errors over
//! time, p50 and p99 over time, the latency distribution on a percentile axis with
//! labelled ticks, the propagation-latency distribution when churn ran, and tables of
//! statuses, errors, wrong decisions by kind, what was sent and the thresholds. One
//! self-contained file (inline SVG, no script, nothing fetched). [`compare`] overlays
//! two runs (`loadtest --compare A.json B.json --html FILE`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::report::Report;

const BLUE: &str = "#1f77b4";
const RED: &str = "#d62728";
const GREEN: &str = "#2ca02c";
const ORANGE: &str = "#ff7f0e";
const PURPLE: &str = "#9467bd";

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A named, colored line of (x, y) points, dashed or not.
struct Series {
    name: String,
    color: &'static str,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

/// The x axis: linear with ticks every so often, or the percentile ("nines") axis.
enum XAxis {
    Linear(&'static str),
    Percentile,
}

/// x = -log10(1 - q): 90, 99, 99.9 are equal steps.
fn nines(p: f64) -> f64 {
    -(1.0 - (p / 100.0).min(0.99999)).log10()
}

/// Percentile ticks: (position, label).
const PERCENTILE_TICKS: [(f64, &str); 6] = [
    (0.0, "p0"),
    (50.0, "p50"),
    (90.0, "p90"),
    (99.0, "p99"),
    (99.9, "p99.9"),
    (99.99, "p99.99"),
];

/// A line chart as inline SVG with labelled axes and ticks, and a legend.
fn chart(id: &str, title: &str, x: XAxis, y_label: &str, series: &[Series]) -> String {
    let (w, h, l, r, t, b) = (760.0, 320.0, 70.0, 150.0, 20.0, 50.0);
    let pts = || series.iter().flat_map(|s| s.points.iter());
    let xmax = match x {
        XAxis::Percentile => nines(99.999),
        XAxis::Linear(_) => pts().map(|p| p.0).fold(0.0f64, f64::max).max(1.0),
    };
    let top = pts().map(|p| p.1).fold(0.0f64, f64::max).max(1e-6);
    let ystep = nice_step(top / 4.0);
    let ymax = (top / ystep).ceil().max(1.0) * ystep;
    let sx = |v: f64| l + v / xmax * (w - l - r);
    let sy = |v: f64| h - b - v / ymax * (h - t - b);
    let mut s = format!(
        "<h2>{}</h2><svg id=\"{id}\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">\
         <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#fff\" stroke=\"#ccc\"/>\
         <line x1=\"{l}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>\
         <line x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{}\" stroke=\"#333\"/>",
        esc(title),
        esc(title),
        h - b,
        w - r,
        h - b,
        h - b
    );
    // y ticks and grid.
    let y_ticks = (ymax / ystep).round() as u32;
    for i in 0..=y_ticks {
        let v = ystep * f64::from(i);
        let _ = write!(
            s,
            "<line x1=\"{l}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.0}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            w - r,
            l - 6.0,
            sy(v) + 4.0,
            short(v),
            y = sy(v)
        );
    }
    // x ticks.
    let ticks: Vec<(f64, String)> = match x {
        XAxis::Percentile => PERCENTILE_TICKS
            .iter()
            .map(|(p, name)| (nines(*p), (*name).to_string()))
            .collect(),
        XAxis::Linear(_) => {
            let step = nice_step(xmax / 6.0);
            (0..)
                .map(|i| f64::from(i) * step)
                .take_while(|v| *v <= xmax + 1e-9)
                .map(|v| (v, short(v)))
                .collect()
        }
    };
    for (v, label) in &ticks {
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#333\"/>\
             <text class=\"tick\" x=\"{x:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            h - b,
            h - b + 5.0,
            h - b + 18.0,
            esc(label),
            x = sx(*v)
        );
    }
    let x_label = match x {
        XAxis::Percentile => "percentile",
        XAxis::Linear(name) => name,
    };
    let _ = write!(
        s,
        "<text x=\"{:.0}\" y=\"{:.0}\" font-size=\"12\" text-anchor=\"middle\">{x_label}</text>\
         <text x=\"14\" y=\"{:.0}\" font-size=\"12\" transform=\"rotate(-90 14 {:.0})\" \
         text-anchor=\"middle\">{}</text>",
        l + (w - l - r) / 2.0,
        h - 10.0,
        t + (h - t - b) / 2.0,
        t + (h - t - b) / 2.0,
        esc(y_label)
    );
    for (k, se) in series.iter().enumerate() {
        let path: Vec<String> = se
            .points
            .iter()
            .map(|(px, py)| {
                let xv = match x {
                    XAxis::Percentile => nines(*px),
                    XAxis::Linear(_) => *px,
                };
                format!("{:.1},{:.1}", sx(xv), sy(*py))
            })
            .collect();
        let dash = if se.dashed {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let color = se.color;
        let _ = write!(
            s,
            "<polyline class=\"series\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash} points=\"{}\"/>\
             <line x1=\"{:.0}\" y1=\"{:.0}\" x2=\"{:.0}\" y2=\"{:.0}\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>\
             <text x=\"{:.0}\" y=\"{:.0}\" font-size=\"12\">{}</text>",
            path.join(" "),
            w - r + 10.0,
            t + 10.0 + 16.0 * k as f64,
            w - r + 30.0,
            t + 10.0 + 16.0 * k as f64,
            w - r + 36.0,
            t + 14.0 + 16.0 * k as f64,
            esc(&se.name)
        );
    }
    s.push_str("</svg>");
    s
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let p = 10f64.powf(raw.max(1e-9).log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p)
}

/// A number short enough for a tick.
fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        // Up to three decimals, without trailing zeros.
        let t = format!("{v:.3}");
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A two-column table.
fn table<K: std::fmt::Display, V: std::fmt::Display>(
    id: &str,
    title: &str,
    head: (&str, &str),
    rows: impl IntoIterator<Item = (K, V)>,
) -> String {
    let mut s = format!("<h2>{}</h2><table id=\"{id}\">", esc(title));
    if !head.0.is_empty() || !head.1.is_empty() {
        let _ = write!(
            s,
            "<tr><th>{}</th><th>{}</th></tr>",
            esc(head.0),
            esc(head.1)
        );
    }
    let mut any = false;
    for (k, v) in rows {
        any = true;
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(&k.to_string()),
            esc(&v.to_string())
        );
    }
    if !any {
        s.push_str("<tr><td colspan=\"2\">none</td></tr>");
    }
    s.push_str("</table>");
    s
}

fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

/// The run's settings and its headline figures.
fn metadata(r: &Report) -> Vec<(&'static str, String)> {
    let run = &r.run;
    let or_dash = |s: &str| {
        if s.is_empty() {
            "–".to_string()
        } else {
            s.to_string()
        }
    };
    vec![
        ("started", or_dash(&run.started_at)),
        ("ended", or_dash(&run.ended_at)),
        ("target", run.target.clone()),
        (
            "protocol",
            format!(
                "{}{}",
                serde_json::to_value(run.protocol)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                if run.plain { " (plaintext)" } else { " (TLS)" }
            ),
        ),
        ("load model", run.model.clone()),
        (
            "rate or concurrency",
            match (run.rate, run.concurrency) {
                (Some(rate), _) => format!("{rate} req/s (open loop)"),
                (None, Some(c)) => format!("{c} in flight (closed loop)"),
                _ => "–".into(),
            },
        ),
        ("connections", run.connections.to_string()),
        (
            "streams per connection",
            run.streams.map_or("–".into(), |s| s.to_string()),
        ),
        ("codes", format!("{} (pool of {})", run.codes, run.pool)),
        ("mix", or_dash(&run.mix)),
        ("warm-up", format!("{} s", run.warmup_s)),
        ("loadtest version", or_dash(&run.tool_version)),
        (
            "gateway version",
            run.gateway_version.clone().unwrap_or_else(|| "–".into()),
        ),
        ("duration", format!("{:.1} s", r.duration_s)),
        ("requests", r.requests.to_string()),
        ("throughput", format!("{:.0} req/s", r.throughput_rps)),
        (
            "latency p50 / p99 / p99.9 / max",
            format!(
                "{} / {} / {} / {}",
                ms(r.latency_us.p50),
                ms(r.latency_us.p99),
                ms(r.latency_us.p999),
                ms(r.latency_us.max)
            ),
        ),
        (
            "generator CPU",
            r.generator_cpu
                .map_or("–".into(), |c| format!("{:.0} % of a core", c * 100.0)),
        ),
        (
            "wrong decisions",
            format!(
                "{} ({} unsafe allows)",
                r.wrong.total, r.wrong.unsafe_allows
            ),
        ),
        ("result", if r.passed { "PASS" } else { "FAIL" }.into()),
    ]
}

const STYLE: &str = "<style>body{font-family:sans-serif;margin:2em;max-width:62em;color:#222}\
table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}\
th{background:#f0f0f0}h1{margin-bottom:0.2em}.pass{color:#2ca02c}.fail{color:#d62728}\
pre{background:#f6f6f6;padding:1em;overflow:auto}</style>";

fn head(title: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title>{STYLE}</head><body>",
        esc(title)
    )
}

fn over_time(r: &Report, suffix: &str, dashed: bool) -> (Vec<Series>, Vec<Series>) {
    let line = |name: &str, color: &'static str, y: fn(&crate::report::Second) -> f64| Series {
        name: format!("{name}{suffix}"),
        color,
        dashed,
        points: r.timeline.iter().map(|s| (s.t as f64, y(s))).collect(),
    };
    let rate = vec![
        line("requests/s", BLUE, |s| s.requests as f64),
        line("errors/s", RED, |s| s.errors as f64),
    ];
    let latency = vec![
        line("p50", GREEN, |s| s.p50_us as f64 / 1000.0),
        line("p99", ORANGE, |s| s.p99_us as f64 / 1000.0),
    ];
    (rate, latency)
}

fn distribution(r: &Report, name: &str, color: &'static str, dashed: bool) -> Series {
    Series {
        name: name.into(),
        color,
        dashed,
        points: r
            .distribution
            .iter()
            .map(|(p, us)| (*p, *us as f64 / 1000.0))
            .collect(),
    }
}

fn propagation(r: &Report, name: &str, color: &'static str, dashed: bool) -> Option<Series> {
    let p = r.propagation.as_ref()?;
    Some(Series {
        name: name.into(),
        color,
        dashed,
        points: p.distribution.clone(),
    })
}

/// The charts of one run, or of several overlaid (each named, the later ones dashed):
/// throughput and errors, p50 and p99 over time, the latency distribution, and the
/// propagation distribution where churn ran.
fn charts(runs: &[(&Report, &str, bool)]) -> String {
    let named = |name: &str, alone: &str| {
        if name.is_empty() {
            alone.to_string()
        } else {
            name.to_string()
        }
    };
    let (mut rate, mut latency) = (Vec::new(), Vec::new());
    for (r, name, dashed) in runs {
        let suffix = if name.is_empty() {
            String::new()
        } else {
            format!(" ({name})")
        };
        let (a, b) = over_time(r, &suffix, *dashed);
        rate.extend(a);
        latency.extend(b);
    }
    let dists: Vec<Series> = runs
        .iter()
        .map(|(r, n, d)| distribution(r, &named(n, "latency"), PURPLE, *d))
        .collect();
    let props: Vec<Series> = runs
        .iter()
        .filter_map(|(r, n, d)| propagation(r, &named(n, "publish → first deny"), RED, *d))
        .collect();
    let mut s = chart(
        "throughput",
        "Throughput and errors over time",
        XAxis::Linear("second"),
        "per second",
        &rate,
    );
    s.push_str(&chart(
        "latency-over-time",
        "Latency over time (p50, p99 of each second)",
        XAxis::Linear("second"),
        "ms",
        &latency,
    ));
    s.push_str(&chart(
        "distribution",
        "Latency distribution",
        XAxis::Percentile,
        "ms",
        &dists,
    ));
    if !props.is_empty() {
        s.push_str(&chart(
            "propagation",
            "Propagation latency (a status change published → the first deny seen)",
            XAxis::Percentile,
            "ms",
            &props,
        ));
    }
    s
}

/// One run's page.
pub fn page(r: &Report) -> String {
    let mut s = head("loadtest report");
    let _ = write!(
        s,
        "<h1>loadtest report</h1><p class=\"{}\">{}: {:.0} req/s, p99 {}, {} wrong decisions</p>",
        if r.passed { "pass" } else { "fail" },
        if r.passed { "PASS" } else { "FAIL" },
        r.throughput_rps,
        ms(r.latency_us.p99),
        r.wrong.total
    );
    s.push_str(&table("metadata", "The run", ("", ""), metadata(r)));
    s.push_str(&charts(&[(r, "", false)]));
    s.push_str(&tables(r));
    let json = serde_json::to_string_pretty(r).unwrap_or_default();
    let _ = writeln!(
        s,
        "<details><summary>JSON</summary><pre>{}</pre></details></body></html>",
        esc(&json)
    );
    s
}

fn tables(r: &Report) -> String {
    let mut s = String::new();
    s.push_str(&table(
        "statuses",
        "Status codes",
        ("status", "answers"),
        r.statuses.iter(),
    ));
    s.push_str(&table(
        "errors",
        "Requests without an answer",
        ("why", "count"),
        r.errors.iter(),
    ));
    let wrong: BTreeMap<String, u64> = r
        .wrong
        .by_kind
        .iter()
        .flat_map(|(k, m)| m.iter().map(move |(w, n)| (format!("{k}: {w}"), *n)))
        .collect();
    s.push_str(&table(
        "wrong",
        "Wrong decisions by kind",
        ("kind: what differed", "count"),
        wrong.iter(),
    ));
    s.push_str(&table(
        "sent",
        "Sent by kind",
        ("kind", "requests"),
        r.sent_by_kind.iter(),
    ));
    let thresholds: Vec<(String, String)> = r
        .thresholds
        .iter()
        .map(|t| {
            (
                t.expr.clone(),
                format!(
                    "{} (measured {:.3})",
                    if t.failed { "FAILED" } else { "ok" },
                    t.value
                ),
            )
        })
        .collect();
    s.push_str(&table(
        "thresholds",
        "Thresholds",
        ("threshold", "result"),
        thresholds,
    ));
    s
}

/// Two runs overlaid: `a` solid, `b` dashed.
pub fn compare(a: &Report, b: &Report, names: (&str, &str)) -> String {
    let mut s = head("loadtest comparison");
    let _ = write!(
        s,
        "<h1>loadtest comparison</h1><p>A (solid): {}; B (dashed): {}</p>",
        esc(names.0),
        esc(names.1)
    );
    let ma = metadata(a);
    let mb = metadata(b);
    let mut t = String::from(
        "<h2>The runs</h2><table id=\"metadata\"><tr><th></th><th>A</th><th>B</th></tr>",
    );
    for ((k, va), (_, vb)) in ma.iter().zip(mb.iter()) {
        let _ = write!(
            t,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(k),
            esc(va),
            esc(vb)
        );
    }
    let _ = write!(
        t,
        "<tr><td>throughput B ÷ A</td><td colspan=\"2\">{:.3}</td></tr></table>",
        b.throughput_rps / a.throughput_rps.max(1e-9)
    );
    s.push_str(&t);
    s.push_str(&charts(&[(a, "A", false), (b, "B", true)]));
    s.push_str("<h2>A</h2>");
    s.push_str(&tables(a));
    s.push_str("<h2>B</h2>");
    s.push_str(&tables(b));
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_ticks() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(37.0), 50.0);
        assert!(nines(99.0) > nines(90.0) && nines(99.9) > nines(99.0));
        assert_eq!(short(0.0), "0");
        assert_eq!(short(25_000.0), "25k");
        assert_eq!(short(0.5), "0.5");
        assert_eq!(short(2.5), "2.5");
        assert_eq!(esc("<a&\">"), "&lt;a&amp;&quot;&gt;");
    }
}
