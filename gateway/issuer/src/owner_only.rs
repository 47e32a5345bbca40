//! Files that hold secrets or personal data (`cli.md`, revision 3): everything the
//! gateway and the issuing commands write is created readable by its owner only (files
//! 0600, directories 0700), and a secret key file that group or others may read is
//! refused before it is used.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::IssueError;

/// Files: read and write by the owner.
pub const FILE_MODE: u32 = 0o600;
/// Directories: the owner only.
pub const DIR_MODE: u32 = 0o700;

/// Creates (or truncates) `path` with mode 0600; an existing file is narrowed to 0600
/// first, since the mode given at creation does not apply to it.
pub fn create(path: &Path) -> io::Result<File> {
    if path.exists() {
        fs::set_permissions(path, fs::Permissions::from_mode(FILE_MODE))?;
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Writes `bytes` to `path` (created or truncated, 0600).
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    create(path)?.write_all(bytes)
}

/// Writes `bytes` to `path`, which must not exist yet (0600).
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)?
        .write_all(bytes)
}

/// Creates `path` and its missing parents with mode 0700. An existing directory is left
/// as it is (it may be shared, `/tmp` say); the files written in it are 0600.
pub fn dir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
}

/// Narrows an existing file to 0600 (files the quick start made before this rule).
pub fn narrow(path: &Path) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(FILE_MODE))
}

/// Refuses a secret key file that group or others may read or write.
pub fn check_secret(path: &Path) -> Result<(), IssueError> {
    let mode = fs::metadata(path)
        .map_err(|e| IssueError::file(path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(IssueError::file(
            path,
            format!(
                "a secret key file must be readable by its owner only (mode {:03o}; chmod 600 it)",
                mode & 0o777
            ),
        ));
    }
    Ok(())
}

/// Reads a secret key file after [`check_secret`].
pub fn read_secret(path: &Path) -> Result<Vec<u8>, IssueError> {
    check_secret(path)?;
    fs::read(path).map_err(|e| IssueError::file(path, e))
}

/// [`read_secret`] as UTF-8 text.
pub fn read_secret_text(path: &Path) -> Result<String, IssueError> {
    String::from_utf8(read_secret(path)?).map_err(|_| IssueError::file(path, "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_and_directories_are_owner_only_and_loose_secrets_refused() {
        let base = std::env::temp_dir().join(format!("owner-only-{}", std::process::id()));
        let d = base.join("a/b");
        dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
        let f = d.join("secret");
        fs::write(&f, "x").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_secret(&f).unwrap_err().to_string();
        assert!(e.contains("secret") && e.contains("644"), "{e}");
        write(&f, b"y").unwrap();
        assert_eq!(mode(&f), 0o600);
        assert_eq!(read_secret(&f).unwrap(), b"y");
        assert!(write_new(&f, b"z").is_err(), "write_new never overwrites");
        write_new(&d.join("new"), b"z").unwrap();
        assert_eq!(mode(&d.join("new")), 0o600);
        fs::remove_dir_all(&base).unwrap();
    }
}
