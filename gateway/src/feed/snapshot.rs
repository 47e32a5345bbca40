//! Snapshot files in `--state-dir/snapshots`: written atomically (temporary file, fsync,
//! rename, fsync of the directory), named by feed and position, the two newest of each
//! feed kept. Boot takes the newest that reads back whole; a damaged one is logged and
//! skipped, and with none left the feed is replayed from the start.
//!
//! Loading (`feed.md` revision 4) opens the file once and reads it whole into memory
//! (the bytes checked are the bytes applied: a file swapped after the check changes
//! nothing), checks all of it (trailer, root signatures, shape, every record's bounds)
//! and the stream it names, and only then applies it, from those bytes, while
//! decisions wait (`FeedState::restoring`): nothing of a refused snapshot is applied,
//! and no request sees half of a good one.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use gateway_core::snapshot;
use gateway_core::trust::RootKey;
use gateway_issuer::FeedSource;

use crate::app::App;

/// Snapshots kept per feed: the newest, and one to fall back on if it is damaged.
const KEEP: usize = 2;
const SUFFIX: &str = ".jkms";
/// Largest snapshot read: the file is held in memory while it is checked and applied
/// (34 bytes a subject, so 16 GiB is about 500 million subjects).
const MAX_FILE: u64 = 16 << 30;

/// Where one feed's snapshots live.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    /// The feed's name, recorded in each snapshot (`file:/abs/path`, `nats://…`).
    source: String,
    /// The feed file, whose identity is read again at each save.
    file: Option<PathBuf>,
    /// File-name prefix derived from `source`, so two feeds never share files.
    prefix: String,
    /// Keys the files are authenticated with, derived from the feed keys (the first one
    /// writes); none without a feed key (the trailer then only detects damage).
    keys: std::sync::Arc<Vec<snapshot::SnapshotKey>>,
    /// Verifies the root-signed documents a snapshot carries.
    root: Option<RootKey>,
}

/// A snapshot read back whole: its header and its verified documents (none without a
/// root key, when it carries none).
type Checked = (snapshot::Header, Option<snapshot::Documents>);

/// What a boot-time load found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loaded {
    /// The position to resume after (0: replay everything).
    pub position: u64,
    pub subjects: u64,
}

impl Store {
    pub fn new(state_dir: &Path, feed: &FeedSource, app: &App, root: Option<RootKey>) -> Store {
        let source = feed.id();
        let digest = ring::digest::digest(&ring::digest::SHA256, source.as_bytes());
        let prefix: String = digest.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Store {
            dir: state_dir.join("snapshots"),
            source,
            file: match feed {
                FeedSource::File(p) => Some(p.clone()),
                FeedSource::Nats { .. } => None,
            },
            prefix: format!("{prefix}-"),
            keys: std::sync::Arc::new(
                app.feed_keys
                    .keys()
                    .iter()
                    .map(snapshot::SnapshotKey::derive)
                    .collect(),
            ),
            root,
        }
    }

    /// This feed's snapshots, newest (highest position) first.
    pub fn list(&self) -> Vec<(u64, PathBuf)> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<(u64, PathBuf)> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let pos = name
                    .strip_prefix(&self.prefix)?
                    .strip_suffix(SUFFIX)?
                    .parse()
                    .ok()?;
                Some((pos, e.path()))
            })
            .collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.0));
        out
    }

    /// Loads the newest good snapshot into `app`'s verifier. One that claims a position
    /// beyond `head` (the stream's last position, when known), or that names another
    /// stream than `identity` (none known: no snapshot is used), is refused like a
    /// damaged one. Blocking: run it off the async threads.
    pub fn load(&self, app: &App, head: Option<u64>, identity: Option<String>) -> Loaded {
        for (pos, path) in self.list() {
            let started = Instant::now();
            let refused = |why: &str| {
                metrics::counter!("gateway_snapshot_refused_total").increment(1);
                tracing::error!(path = %path.display(), position = pos, why, "snapshot refused; skipped");
            };
            let bytes = match Self::read_whole(&path) {
                Ok(b) => b,
                Err(e) => {
                    refused(&e.to_string());
                    continue;
                }
            };
            let (header, docs) = match self.check(&bytes) {
                Ok(c) => c,
                Err(e) => {
                    refused(&format!("damaged: {e}"));
                    continue;
                }
            };
            if header.source != self.source {
                tracing::warn!(path = %path.display(), "snapshot of another feed skipped");
                continue;
            }
            if head.is_some_and(|h| header.position > h) {
                refused("it claims a position beyond the stream's head");
                continue;
            }
            if identity.is_none() || header.stream != identity {
                refused("it was taken from another stream (recreated, or a replaced feed file), or the stream's identity is unknown now");
                continue;
            }
            // No request sees half of it: decisions answer 503 while it is applied.
            app.feed.set_restoring(true);
            self.apply(app, &bytes, &header, docs);
            app.feed.set_restoring(false);
            tracing::info!(
                path = %path.display(), position = header.position,
                subjects = header.subjects, took_ms = started.elapsed().as_millis() as u64,
                "snapshot loaded"
            );
            app.metrics.snapshot_loaded(started.elapsed());
            return Loaded {
                position: header.position,
                subjects: header.subjects,
            };
        }
        Loaded::default()
    }

    /// The whole file, from one open, within [`MAX_FILE`].
    fn read_whole(path: &Path) -> Result<Vec<u8>, snapshot::SnapshotError> {
        let f = File::open(path)?;
        let len = f.metadata()?.len();
        if len > MAX_FILE {
            return Err(snapshot::SnapshotError::Header("file too large".into()));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        f.take(MAX_FILE + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_FILE {
            return Err(snapshot::SnapshotError::Header("file too large".into()));
        }
        Ok(bytes)
    }

    /// Reads every byte, trailer and record bounds included, and verifies the
    /// root-signed documents (once: [`Store::apply`] applies them as verified),
    /// applying nothing.
    fn check(&self, bytes: &[u8]) -> Result<Checked, snapshot::SnapshotError> {
        let header = snapshot::read(bytes, &self.keys, |_| {})?;
        let signed = !header.key_docs.is_empty()
            || header.policy.is_some()
            || header.pending_policy.is_some()
            || header.shadow_policy.is_some();
        let docs = match &self.root {
            Some(root) => Some(snapshot::verify_documents(&header, root)?),
            None if signed => {
                return Err(snapshot::SnapshotError::Signed(
                    "no root key configured".into(),
                ))
            }
            None => None,
        };
        Ok((header, docs))
    }

    /// Applies checked bytes: they read back as they did in [`Store::check`].
    fn apply(
        &self,
        app: &App,
        bytes: &[u8],
        header: &snapshot::Header,
        docs: Option<snapshot::Documents>,
    ) {
        if let Some(docs) = docs {
            // A policy not newer than the configured one is left out, as on the feed.
            let _ = snapshot::restore_documents(&app.verifier, docs, app.now());
            crate::rollout::gauges(&app.verifier.rules());
        }
        // A hint, bounded by what the file can hold (34 bytes per status record).
        let most = bytes.len() as u64 / 34;
        let subjects = usize::try_from(header.subjects.min(most)).unwrap_or(0);
        app.verifier
            .status()
            .reserve(app.verifier.status().len() + subjects);
        let mut progress = crate::logs::Progress::new("snapshot_load", 0);
        let mut done = 0u64;
        let read = snapshot::read(bytes, &self.keys, |r| {
            snapshot::restore_record(&app.verifier, r);
            done += 1;
            if done.is_multiple_of(65_536) {
                progress.at(done, header.subjects.max(done));
            }
        });
        debug_assert!(read.is_ok(), "the same bytes were checked");
    }

    /// The identity recorded in a snapshot taken now: the feed file's read again (it
    /// has lines by now), or the stream's as the follower learned it.
    fn identity(&self, app: &App) -> Option<String> {
        match &self.file {
            Some(p) => crate::feed::file::identity(p).ok(),
            None => app.feed.stream_id(),
        }
    }

    /// Writes the state as of `position` and drops older snapshots beyond `KEEP`.
    /// Blocking: run it off the async threads.
    pub fn save(&self, app: &App, position: u64) -> std::io::Result<PathBuf> {
        let started = Instant::now();
        gateway_issuer::owner_only::dir(&self.dir)?;
        let name = format!("{}{position:020}{SUFFIX}", self.prefix);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let stream = self.identity(app);
        let header = snapshot::header_of(
            &app.verifier,
            &self.source,
            stream.as_deref(),
            position,
            app.now(),
        );
        let file = gateway_issuer::owner_only::create(&tmp)?;
        let mut w = snapshot::write(
            &app.verifier,
            &header,
            self.keys.first(),
            BufWriter::with_capacity(1 << 20, file),
        )?;
        w.flush()?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &path)?;
        File::open(&self.dir)?.sync_all()?;
        for (_, old) in self.list().into_iter().skip(KEEP) {
            let _ = std::fs::remove_file(old);
        }
        app.metrics.snapshot_written(position, started.elapsed());
        tracing::info!(
            position,
            subjects = header.subjects,
            took_ms = started.elapsed().as_millis() as u64,
            "snapshot written"
        );
        Ok(path)
    }
}
