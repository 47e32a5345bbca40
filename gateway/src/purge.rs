//! `gateway purge`: the end of the epidemic. Destroys what the gateway and the issuing
//! commands wrote under a state directory that holds personal data: every snapshot
//! (each pseudonym's status, every revoked token id), the development feed file and the
//! publisher's registry (each pseudonym's facts). With `--keys`, also the secret keys of
//! the development setup, which the runbook destroys last.
//!
//! Each file is overwritten with zeros and synced before it is unlinked, then its
//! directory is synced. On a filesystem that writes in place that removes the data;
//! copy-on-write filesystems, snapshots of the volume and flash remapping may keep old
//! blocks, which is why the runbook also destroys the volume (or its encryption key).
//! Run it with the gateway stopped: a running one writes a snapshot at shutdown.
//!
//! It never follows a symbolic link (`cli.md` revision 4): a link found where a file or
//! the `snapshots` folder should be is removed, its target left untouched, and the
//! report says so (a link planted in the state directory would otherwise make a purge
//! run as root zero-fill whatever it points at). Files are opened with `O_NOFOLLOW`, so
//! a link swapped in after the check is refused rather than followed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::Args;

use crate::config::{ConfigError, DEFAULT_STATE_DIR};
use gateway_issuer::DevSetup;

#[derive(Debug, Clone, Args)]
pub struct PurgeArgs {
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Also destroy the development setup's secret keys (pseudonym key, feed key, root
    /// and issuer seeds, API key, TLS key).
    #[arg(long)]
    pub keys: bool,
}

/// Overwrites the regular file `path` with zeros, syncs it, unlinks it; returns its
/// length. A link is refused (`O_NOFOLLOW`), as is anything but a regular file.
fn destroy(path: &Path) -> io::Result<u64> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let len = meta.len();
    let zeros = vec![0u8; 1 << 16];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    drop(f);
    fs::remove_file(path)?;
    Ok(len)
}

/// What stands at a path, without following a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    File,
    Link,
    Other,
}

fn found(p: &Path) -> Option<Found> {
    let m = fs::symlink_metadata(p).ok()?;
    Some(if m.file_type().is_symlink() {
        Found::Link
    } else if m.is_file() {
        Found::File
    } else {
        Found::Other
    })
}

/// What holds personal data (and, with `keys`, the secret keys) under `state`, files
/// and links alike (see [`purge`]); a `snapshots` folder that is a link is listed itself,
/// never entered.
fn targets(state: &Path, keys: bool) -> Vec<PathBuf> {
    let dev = DevSetup::new(state);
    let snapshots = state.join("snapshots");
    let mut out: Vec<PathBuf> = match found(&snapshots) {
        Some(Found::Link) => vec![snapshots],
        _ => fs::read_dir(&snapshots)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| matches!(found(p), Some(Found::File | Found::Link)))
                    .collect()
            })
            .unwrap_or_default(),
    };
    out.sort();
    out.extend([
        dev.feed(),
        state.join("registry.json"),
        state.join("registry.json.tmp"),
    ]);
    if keys {
        out.extend([
            dev.pseudonym_key(),
            dev.feed_key(),
            dev.root_seed(),
            dev.issuer_seed(),
            dev.api_key(),
            dev.key(),
        ]);
    }
    out.retain(|p| matches!(found(p), Some(Found::File | Found::Link)));
    out
}

/// Runs `gateway purge`; the report lists every file destroyed.
pub fn purge(a: &PurgeArgs) -> Result<String, ConfigError> {
    if !a.state_dir.is_dir() {
        return Err(ConfigError::flag(
            "state-dir",
            format!("{} is not a directory", a.state_dir.display()),
        ));
    }
    let mut report = Vec::new();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for p in targets(&a.state_dir, a.keys) {
        if found(&p) == Some(Found::Link) {
            fs::remove_file(&p).map_err(|e| ConfigError::file(&p, e))?;
            report.push(format!(
                "removed {}: a symbolic link, not followed (its target is left untouched)",
                p.display()
            ));
        } else {
            let len = destroy(&p).map_err(|e| ConfigError::file(&p, e))?;
            report.push(format!(
                "destroyed {} ({len} bytes overwritten)",
                p.display()
            ));
        }
        if let Some(d) = p.parent() {
            if !dirs.iter().any(|x| x == d) {
                dirs.push(d.to_path_buf());
            }
        }
    }
    for d in dirs {
        File::open(&d)
            .and_then(|f| f.sync_all())
            .map_err(|e| ConfigError::file(&d, e))?;
    }
    if report.is_empty() {
        report.push(format!(
            "nothing to destroy under {}",
            a.state_dir.display()
        ));
    }
    Ok(report.join("\n"))
}
