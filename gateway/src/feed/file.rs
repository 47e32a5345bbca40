//! The embedded default feed: an append-only file of JSON lines, followed as it grows.
//! A line's position is its 1-based line number (a bad line still takes its position).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gateway_core::trust::RootKey;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::app::App;

/// A failing read repeats at every poll: logged at a bounded rate.
static READ_FAILED: crate::logs::Throttle = crate::logs::Throttle::new();

/// How often the file is checked for new lines once the end is reached.
const POLL: Duration = Duration::from_millis(50);
/// Longest line kept (`offline.md`: feed messages may be up to 4 MiB, for status
/// lists); a longer one is skipped whole (it still takes its position).
const MAX_LINE: usize = 4 << 20;
/// How much of a first line without its end the file's identity hashes.
const IDENTITY_PREFIX: usize = 4 << 20;

/// Lines in the file that are complete (end in a newline): the feed's head.
pub fn complete_lines(path: &std::path::Path) -> std::io::Result<u64> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let got = f.read(&mut buf)?;
        if got == 0 {
            return Ok(n);
        }
        n += buf[..got].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

/// The identity of a feed file (`feed.md` revision 4), recorded in snapshots: its
/// device, its inode and the SHA-256 of its first line (`none` before it has one; of
/// its first 4 MiB when the line is longer), so a snapshot of a replaced file, even one
/// of the same name, is not used.
pub fn identity(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let mut f = std::fs::File::open(path)?;
    let m = f.metadata()?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let (mut read, mut line) = (0usize, false);
    while read < IDENTITY_PREFIX {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if let Some(i) = buf[..n].iter().position(|&b| b == b'\n') {
            digest.update(&buf[..i]);
            line = true;
            break;
        }
        digest.update(&buf[..n]);
        read += n;
    }
    let first = if line || read >= IDENTITY_PREFIX {
        digest
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    } else {
        "none".to_owned()
    };
    Ok(format!(
        "file:dev={},ino={},first={first}",
        m.dev(),
        m.ino()
    ))
}

/// Follows `path` until `stop` turns true, applying the lines after `app.feed.position()`
/// (the snapshot's position; 0 replays every line).
pub async fn follow(
    path: PathBuf,
    app: Arc<App>,
    root: Option<RootKey>,
    mut stop: watch::Receiver<bool>,
) {
    let resume = app.feed.position();
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "feed file cannot be opened");
            return;
        }
    };
    let mut position = 0u64;
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 256 * 1024];
    // Set while the rest of an over-long line is being skipped.
    let mut skipping = false;
    loop {
        let n = match file.read(&mut chunk).await {
            Ok(n) => n,
            Err(e) => {
                crate::warn_throttled!(READ_FAILED, error = %e, "feed file read failed");
                0
            }
        };
        if n > 0 {
            pending.extend_from_slice(&chunk[..n]);
            let mut start = 0;
            while let Some(i) = pending[start..].iter().position(|&b| b == b'\n') {
                position += 1;
                if position <= resume {
                    // Already in the snapshot (an over-long line there too).
                    skipping = false;
                } else if skipping {
                    skipping = false;
                    super::too_long(&app, position);
                } else {
                    super::process(&app, root.as_ref(), position, &pending[start..start + i]);
                }
                start += i + 1;
            }
            pending.drain(..start);
            if pending.len() > MAX_LINE {
                pending.clear();
                skipping = true;
            }
            app.feed.saw_head(position);
            app.metrics.feed_position.set(app.feed.position() as f64);
            continue;
        }
        if !app.feed.caught_up() {
            if position < resume {
                tracing::warn!(
                    lines = position,
                    snapshot_position = resume,
                    "feed file is shorter than the snapshot's position: was it replaced? Waiting for more lines"
                );
            }
            app.feed.set_caught_up();
            tracing::info!(position, "feed caught up");
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => return,
        }
    }
}
