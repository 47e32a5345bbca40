//! Snapshots (`feed.md` revision 4): read once and checked whole before anything is
//! applied, every record within an event's bounds, and tied to the stream they were
//! taken from. Each refused snapshot leaves nothing of itself behind.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gateway_core::snapshot;
use gateway_core::status::Status;
use gateway_core::{Color, Sub};
use gateway_issuer::events::PLAIN;

use crate::support::client::get_plain;
use crate::support::nats::NatsServer;
use crate::support::{Gateway, Options, TempDir};

fn sub(i: u8) -> Sub {
    Sub([i; 16])
}

fn status(i: u8, color: Color, ver: u64) -> String {
    PLAIN.status(&sub(i), color, ver, None, gateway_issuer::unix_now() as i64)
}

fn feed_of(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

async fn refused(gw: &Gateway) -> f64 {
    let m = get_plain(gw.admin, "/metrics").await.unwrap();
    String::from_utf8_lossy(&m.body)
        .lines()
        .find(|l| l.starts_with("gateway_snapshot_refused_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// A gateway on a file feed that holds subject 4 red at version 2 (and 5 others green),
/// stopped so that it wrote its snapshot; returns its directory and the snapshot.
async fn stopped_with_a_snapshot(extra: &[String]) -> (Arc<TempDir>, PathBuf) {
    let mut lines: Vec<String> = (0..5).map(|i| status(i, Color::Green, 1)).collect();
    lines.push(status(4, Color::Red, 2));
    let mut a = Gateway::start(Options {
        feed: feed_of(&lines),
        args: extra.to_vec(),
        ..Options::default()
    })
    .await;
    a.wait_stat("feed_seq", 6).await;
    a.terminate();
    assert!(a.wait_exit().await.success());
    let files = a.snapshot_files();
    assert_eq!(files.len(), 1);
    (a.dir.clone(), files[0].clone())
}

/// A snapshot with the good one's header, holding what `state` says, under no key.
fn forged(good: &[u8], state: &[(Sub, Status)]) -> Vec<u8> {
    let header = snapshot::read(good, &[], |_| {}).expect("the good one reads");
    let trust = gateway_core::trust::TrustList::from_json(br#"{"keys": []}"#)
        .unwrap()
        .0;
    let v = gateway_core::Verifier::new(Default::default(), trust, None, None);
    for (s, st) in state {
        v.status().apply(*s, *st);
    }
    let mut h = header;
    h.key_docs.clear();
    h.policy = None;
    snapshot::write(&v, &h, None, Vec::new()).unwrap()
}

fn green_forever() -> (Sub, Status) {
    (
        sub(4),
        Status {
            color: Color::Green,
            ver: 1000,
            at: gateway_issuer::unix_now(),
        },
    )
}

/// The snapshot is a FIFO that serves the good snapshot to its first reader and, had
/// there been a second open (a check, then an apply from the path opened again), a
/// forged one saying subject 4 is green at version 1000. The gateway opens it once: the
/// forged bytes are never read, and subject 4 stays red.
#[tokio::test]
async fn a_snapshot_swapped_after_the_check_is_never_read() {
    let (dir, path) = stopped_with_a_snapshot(&[]).await;
    let good = std::fs::read(&path).unwrap();
    let bad = forged(&good, &[green_forever()]);
    std::fs::remove_file(&path).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    let fifo = path.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        use std::io::Write;
        // The first reader gets the good bytes.
        let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        let _ = f.write_all(&good);
        drop(f);
        // Once that reader has closed (a write end no longer opens: no reader), a
        // second reader, if any opens within the wait, gets the forged bytes
        // (`O_NONBLOCK`: opening a FIFO for writing fails at once while no one reads).
        use std::os::unix::fs::OpenOptionsExt;
        let try_open = || {
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while try_open().is_ok() {
            if std::time::Instant::now() > deadline || rx_stop() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        loop {
            match try_open() {
                Ok(mut f) => {
                    let _ = f.write_all(&bad);
                    let _ = tx.send(true);
                    return;
                }
                Err(_) if std::time::Instant::now() < deadline && !rx_stop() => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(_) => return,
            }
        }
    });
    let b = Gateway::start(Options {
        reuse: Some(dir),
        ..Options::default()
    })
    .await;
    b.wait_stat("feed_seq", 6).await;
    assert_eq!(
        b.stat("feed_resumed_from").await,
        6,
        "the good one was used"
    );
    assert_eq!(
        b.decision(&b.mint(sub(4), Color::Green, 1)).await,
        "deny",
        "subject 4 is still red"
    );
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
    server.join().unwrap();
    assert!(
        rx.try_recv().is_err(),
        "the snapshot was opened a second time"
    );
}

static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn rx_stop() -> bool {
    STOP.load(std::sync::atomic::Ordering::Relaxed)
}

/// A newer snapshot holding a status at version 2^64 − 1 (well authenticated for its
/// key, here none) is refused whole: the older good one is used and nothing of the
/// refused one is applied.
#[tokio::test]
async fn a_record_beyond_an_events_bounds_refuses_the_snapshot() {
    let (dir, path) = stopped_with_a_snapshot(&[]).await;
    let good = std::fs::read(&path).unwrap();
    let mut bad_state = vec![green_forever()];
    bad_state[0].1.ver = u64::MAX;
    // Also a subject the good one does not hold: it must not appear.
    bad_state.push((
        sub(99),
        Status {
            color: Color::Green,
            ver: 1,
            at: gateway_issuer::unix_now(),
        },
    ));
    let bad = forged(&good, &bad_state);
    let newer = path
        .to_string_lossy()
        .replace("00000000000000000006.jkms", "00000000000000000005.jkms");
    assert_ne!(newer, path.to_string_lossy());
    // Same position as the good one would be overtaken: write it as the newest.
    std::fs::write(&newer, &good).unwrap();
    std::fs::write(&path, &bad).unwrap();
    let b = Gateway::start(Options {
        reuse: Some(dir),
        ..Options::default()
    })
    .await;
    b.wait_stat("feed_seq", 6).await;
    assert_eq!(refused(&b).await, 1.0);
    assert_eq!(
        b.stat("feed_resumed_from").await,
        6,
        "the older file, the good one"
    );
    assert_eq!(
        b.stat("status_set_size").await,
        5,
        "nothing of the refused one"
    );
    assert_eq!(b.decision(&b.mint(sub(4), Color::Green, 1)).await, "deny");
}

/// A feed file replaced by another (new inode, other first line) with as many lines:
/// the snapshot of the old one is refused and the new file replayed from its start.
#[tokio::test]
async fn a_snapshot_of_a_replaced_feed_file_is_refused() {
    let (dir, _) = stopped_with_a_snapshot(&[]).await;
    let feed = dir.0.join("state").join("feed.jsonl");
    let lines: Vec<String> = (10..17).map(|i| status(i, Color::Green, 1)).collect();
    let replacement = dir.0.join("replacement.jsonl");
    std::fs::write(&replacement, feed_of(&lines)).unwrap();
    std::fs::rename(&replacement, &feed).unwrap();
    let b = Gateway::start(Options {
        reuse: Some(dir),
        ..Options::default()
    })
    .await;
    b.wait_stat("feed_seq", 7).await;
    assert_eq!(b.stat("feed_resumed_from").await, 0);
    assert_eq!(b.stat("status_set_size").await, 7, "only the new file's");
    assert_eq!(refused(&b).await, 1.0);
    assert_eq!(b.decision(&b.mint(sub(4), Color::Green, 1)).await, "allow");
}

/// A NATS stream deleted and created again under the same name: the snapshot of the
/// first one is refused and the new one replayed from its start.
#[tokio::test]
async fn a_snapshot_of_a_recreated_stream_is_refused() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let mut lines: Vec<String> = (0..5).map(|i| status(i, Color::Green, 1)).collect();
    lines.push(status(4, Color::Red, 2));
    let last = nats.publish(lines).await;
    let mut a = Gateway::start(Options {
        feed_source: Some(nats.feed()),
        ..Options::default()
    })
    .await;
    a.wait_stat("feed_seq", last).await;
    a.terminate();
    assert!(a.wait_exit().await.success());
    assert_eq!(a.snapshot_files().len(), 1);
    let dir = a.dir.clone();
    drop(a);
    // The stream goes and comes back with other events, as many of them.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.delete_stream(stream_name(&nats.feed())).await.unwrap();
    let again: Vec<String> = (20..27).map(|i| status(i, Color::Green, 1)).collect();
    let last = nats.publish(again).await;
    let b = Gateway::start(Options {
        reuse: Some(dir),
        feed_source: Some(nats.feed()),
        ..Options::default()
    })
    .await;
    b.wait_stat("feed_seq", last).await;
    assert_eq!(b.stat("feed_resumed_from").await, 0);
    assert_eq!(b.stat("status_set_size").await, 7, "only the new stream's");
    assert_eq!(refused(&b).await, 1.0);
}

fn stream_name(feed: &str) -> String {
    Path::new(feed)
        .file_name()
        .and_then(|n| n.to_str())
        .expect("nats://host:port/STREAM")
        .to_owned()
}
