//! Snapshot files in `--state-dir/snapshots`: written atomically (temporary file, fsync,
//! rename, fsync of the directory), named by feed and position, the two newest of each
//! feed kept. Boot takes the newest that reads back whole; a damaged one is logged and
//! skipped, and with none left the feed is replayed from the start.
//!
//! Loading reads each file twice: once to check it end to end (checksum included), once
//! to apply it, so a damaged file never leaves a half-loaded set behind.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use gateway_core::snapshot;
use gateway_core::trust::RootKey;

use crate::app::App;

/// Snapshots kept per feed: the newest, and one to fall back on if it is damaged.
const KEEP: usize = 2;
const SUFFIX: &str = ".jkms";

/// Where one feed's snapshots live.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    /// The feed's identity, recorded in each snapshot (`file:/abs/path`, `nats://…`).
    source: String,
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
    pub fn new(state_dir: &Path, source: &str, app: &App, root: Option<RootKey>) -> Store {
        let digest = ring::digest::digest(&ring::digest::SHA256, source.as_bytes());
        let prefix: String = digest.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Store {
            dir: state_dir.join("snapshots"),
            source: source.to_owned(),
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

    /// Loads the newest good snapshot into `app`'s verifier; one that claims a position
    /// beyond `head` (the stream's last position, when known) is refused like a damaged
    /// one. Blocking: run it off the async threads.
    pub fn load(&self, app: &App, head: Option<u64>) -> Loaded {
        for (pos, path) in self.list() {
            let started = Instant::now();
            match self.check(&path) {
                Ok((header, _)) if head.is_some_and(|h| header.position > h) => {
                    metrics::counter!("gateway_snapshot_refused_total").increment(1);
                    tracing::error!(path = %path.display(), position = header.position, head, "snapshot claims a position beyond the stream's head; skipped");
                }
                Ok((header, docs)) if header.source == self.source => {
                    if let Err(e) = self.apply(app, &path, &header, docs) {
                        // The file changed between the two reads, or a record failed: the
                        // documents were checked before anything was applied, the records
                        // are idempotent, so keep what was applied and resume from the start.
                        tracing::error!(path = %path.display(), error = %e, "snapshot could not be applied; replaying the whole feed");
                        return Loaded::default();
                    }
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
                Ok(_) => {
                    tracing::warn!(path = %path.display(), "snapshot of another feed skipped");
                }
                Err(e) => {
                    metrics::counter!("gateway_snapshot_refused_total").increment(1);
                    tracing::error!(path = %path.display(), position = pos, error = %e, "snapshot damaged; skipped");
                }
            }
        }
        Loaded::default()
    }

    fn open(path: &Path) -> Result<BufReader<File>, snapshot::SnapshotError> {
        Ok(BufReader::with_capacity(1 << 20, File::open(path)?))
    }

    /// Reads the whole file, trailer included, and verifies its root-signed documents
    /// (once: [`Store::apply`] applies them as verified), applying nothing.
    fn check(&self, path: &Path) -> Result<Checked, snapshot::SnapshotError> {
        let header = snapshot::read(Self::open(path)?, &self.keys, |_| {})?;
        let signed = !header.key_docs.is_empty() || header.policy.is_some();
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

    fn apply(
        &self,
        app: &App,
        path: &Path,
        header: &snapshot::Header,
        docs: Option<snapshot::Documents>,
    ) -> Result<(), snapshot::SnapshotError> {
        if let Some(docs) = docs {
            snapshot::restore_documents(&app.verifier, docs)?;
        }
        // A hint, bounded by what the file can hold (34 bytes per status record).
        let most = std::fs::metadata(path).map_or(0, |m| m.len() / 34);
        let subjects = usize::try_from(header.subjects.min(most)).unwrap_or(0);
        app.verifier
            .status()
            .reserve(app.verifier.status().len() + subjects);
        let mut progress = crate::logs::Progress::new("snapshot_load", 0);
        let mut done = 0u64;
        snapshot::read(Self::open(path)?, &self.keys, |r| {
            snapshot::restore_record(&app.verifier, r);
            done += 1;
            if done.is_multiple_of(65_536) {
                progress.at(done, header.subjects.max(done));
            }
        })?;
        Ok(())
    }

    /// Writes the state as of `position` and drops older snapshots beyond `KEEP`.
    /// Blocking: run it off the async threads.
    pub fn save(&self, app: &App, position: u64) -> std::io::Result<PathBuf> {
        let started = Instant::now();
        gateway_issuer::owner_only::dir(&self.dir)?;
        let name = format!("{}{position:020}{SUFFIX}", self.prefix);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let header = snapshot::header_of(&app.verifier, &self.source, position, app.now());
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
