//! `loadtest`: the SRE's load tester for the gateway. It mints its own codes with an
//! issuer key the gateway trusts (so it knows the right answer to each), sends them over
//! HTTP/1.1, HTTP/2 or HTTP/3 in a closed or open loop, checks every answer, optionally
//! churns statuses through the feed and measures how fast a change reaches the gateway,
//! and reports throughput, latency percentiles, errors, wrong decisions and
//! propagation, as a table, JSON and HTML, with thresholds for CI.
//!
//! Data flows one way: [`args`] → setup (codes from [`mix`], revocations published) →
//! [`run`] (with [`churn`] beside it) → [`stats`] merged → [`report`] → exit code.
//! Traffic goes only where `--target` says (the tests use 127.0.0.1).

#![forbid(unsafe_code)]

pub mod args;
pub mod churn;
pub mod cpu;
mod error;
pub mod html;
pub mod mint;
pub mod mix;
pub mod pace;
pub mod report;
pub mod run;
pub mod setup;
pub mod stats;
mod table;
pub mod threshold;

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use error::Error;
use report::Report;
use setup::Setup;

/// Open loop: workers at least (requests in flight at most, per `--concurrency` above it).
const OPEN_WORKERS_MIN: usize = 512;

/// Exit codes.
pub const EXIT_PASS: i32 = 0;
pub const EXIT_FAIL: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// Runs a whole load test from parsed arguments; returns the report.
pub async fn execute(a: args::Args) -> Result<Report, Error> {
    let setup: Setup = a.setup()?;
    let live = Arc::new(stats::Live::default());
    // One publisher for the whole run (for NATS, one connection).
    let feed = match &setup.feed {
        Some(f) => Some(Arc::new(f.open().await?)),
        None => None,
    };
    // Revocations for the `revoked` codes, published and seen before the load starts.
    if let Some(feed) = &feed {
        let revoked: Vec<&mix::Item> = setup
            .items
            .iter()
            .filter(|i| i.kind == mix::Kind::Revoked)
            .collect();
        if let Some(last) = revoked.last() {
            let exp = setup.now + 7 * 3600;
            let lines = revoked
                .iter()
                .filter_map(|i| i.cti.as_ref())
                .map(|cti| feed.writer().revoke(cti, exp))
                .collect();
            feed.publish(lines).await?;
            wait_denied(&setup.target, last).await?;
        }
    }
    let progress = (!a.no_progress && std::io::stderr().is_terminal()).then(|| {
        let live = live.clone();
        tokio::spawn(progress_line(live))
    });
    let churn = match (&feed, a.churn_rate) {
        (Some(feed), Some(rate)) if rate > 0.0 => Some(tokio::spawn(churn::run(
            feed.clone(),
            setup.target.clone(),
            setup.churn.clone(),
            rate,
            setup.bounds.warmup + setup.bounds.duration,
        ))),
        _ => None,
    };
    let health = gateway_health(&setup.target).await;
    // Receipts are checked when both sides have the feed key (the gateway says so).
    let receipts = setup
        .receipts
        .clone()
        .filter(|_| health.as_ref().is_some_and(|h| h["feed_auth"] == true))
        .map(Arc::new);
    let shadow_before = match setup.admin {
        Some(a) => Some(shadow_total(a).await.ok_or_else(|| {
            Error::Gateway(format!("the admin port {a} does not answer /metrics"))
        })?),
        None => None,
    };
    let plan = run::Plan {
        receipts: receipts.clone(),
        target: setup.target.clone(),
        connections: a.connections,
        model: setup.model,
        bounds: setup.bounds,
        warmup_items: setup.warmup_items,
        open_workers: a.concurrency().max(OPEN_WORKERS_MIN),
        items: Arc::new(setup.items),
        max_outstanding: a.max_outstanding,
    };
    let mut info = setup.info;
    info.gateway_version = health
        .as_ref()
        .and_then(|h| h["version"].as_str().map(str::to_owned));
    info.receipts_checked = receipts.is_some();
    info.started_at = rfc3339_now();
    let outcome = run::run(plan, live.clone()).await;
    info.ended_at = rfc3339_now();
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let propagation = match churn {
        Some(c) => c.await.ok(),
        None => None,
    };
    let shadow = match (setup.admin, shadow_before) {
        (Some(a), Some(before)) => shadow_total(a).await.map(|after| report::ShadowReport {
            before,
            after,
            growth: after.saturating_sub(before),
        }),
        _ => None,
    };
    let mut report = Report::build(info, outcome, propagation, &setup.thresholds);
    report.shadow = shadow;
    Ok(report)
}

/// Verifies `item` until the gateway denies it (its revocation arrived), up to 30 s.
async fn wait_denied(t: &gateway_client::Target, item: &mix::Item) -> Result<(), Error> {
    let start = Instant::now();
    let conn = gateway_client::Conn::connect(t)
        .await
        .map_err(|e| Error::Gateway(format!("cannot connect to {}: {}", t.addr, e.phase)))?;
    while start.elapsed() < Duration::from_secs(30) {
        let answer = conn
            .post(t, &item.path, item.body.clone(), item.content_type)
            .await;
        if let Some(a) = answer.ok().filter(|a| a.status == 200) {
            if a.json().unwrap_or_default()["reason"] == "token_revoked" {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(Error::Gateway("the revocations published before the run never reached the gateway (is --feed the gateway's feed?)".into()))
}

/// One line a second on a terminal: rate, errors, wrong answers, p99 of the last second.
async fn progress_line(live: Arc<stats::Live>) {
    let start = Instant::now();
    let mut last = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let n = live.requests.load(Ordering::Relaxed);
        let p99 = live.recent.lock().map_or(0, |mut h| {
            let v = h.value_at_quantile(0.99);
            h.reset();
            v
        });
        eprint!(
            "\r[{:>5.1}s] {:>8} req/s  errors {:<6} wrong {:<6} p99 {:.3} ms   ",
            start.elapsed().as_secs_f64(),
            n - last,
            live.errors.load(Ordering::Relaxed),
            live.wrong.load(Ordering::Relaxed),
            p99 as f64 / 1000.0
        );
        last = n;
    }
}

/// Writes the outputs the arguments ask for and gives the exit code.
pub fn finish(a: &args::Args, report: &Report) -> Result<i32, Error> {
    println!("{}", report.table());
    if let Some(p) = &a.json {
        let text = serde_json::to_string_pretty(report).map_err(|e| Error::file(p, e))?;
        std::fs::write(p, text).map_err(|e| Error::file(p, e))?;
    }
    if let Some(p) = &a.html {
        std::fs::write(p, html::page(report)).map_err(|e| Error::file(p, e))?;
    }
    Ok(if report.passed { EXIT_PASS } else { EXIT_FAIL })
}

/// `--compare A.json B.json --html FILE`: the two runs overlaid on one page.
pub fn compare(a: &args::Args) -> Result<i32, Error> {
    let [first, second] = a.compare.as_slice() else {
        return Err(Error::flag("compare", "takes two JSON reports"));
    };
    let out = a
        .html
        .as_ref()
        .ok_or(Error::flag("compare", "needs --html FILE"))?;
    let read = |p: &std::path::PathBuf| -> Result<Report, Error> {
        let text = std::fs::read_to_string(p).map_err(|e| Error::file(p, e))?;
        let r: Report = serde_json::from_str(&text)
            .map_err(|e| Error::file(p, format!("not a report: {e}")))?;
        if r.schema != report::SCHEMA {
            return Err(Error::file(
                p,
                format!("schema {:?}, not {:?}", r.schema, report::SCHEMA),
            ));
        }
        Ok(r)
    };
    let (ra, rb) = (read(first)?, read(second)?);
    let names = (first.display().to_string(), second.display().to_string());
    std::fs::write(out, html::compare(&ra, &rb, (&names.0, &names.1)))
        .map_err(|e| Error::file(out, e))?;
    Ok(EXIT_PASS)
}

/// Now as RFC 3339 (UTC, seconds).
fn rfc3339_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The gateway's version, as its `/healthz` says (`None` if it does not).
/// The gateway's `/healthz` answer (its version, whether it has a feed key).
async fn gateway_health(t: &gateway_client::Target) -> Option<serde_json::Value> {
    let conn = gateway_client::Conn::connect(t).await.ok()?;
    let a = conn.get(t, "/healthz").await.ok()?;
    if a.status != 200 {
        return None;
    }
    a.json().ok()
}

/// The sum of `gateway_policy_shadow_total` on the admin port (0 before any difference);
/// `None` when the admin port does not answer.
async fn shadow_total(admin: std::net::SocketAddr) -> Option<u64> {
    let a = gateway_client::get_plain(admin, "/metrics").await.ok()?;
    if a.status != 200 {
        return None;
    }
    let text = String::from_utf8_lossy(&a.body);
    Some(
        text.lines()
            .filter(|l| l.starts_with("gateway_policy_shadow_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64,
    )
}
