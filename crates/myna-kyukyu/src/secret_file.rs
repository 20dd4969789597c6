//! Files that hold secrets (credentials, keys, launch URLs, card profiles): readable by their
//! owner only from the moment they exist, and complete when they appear. The content goes to a
//! new file created with mode 0600 beside the target, which is then renamed over it: a reader
//! never sees it half written, and nobody who had the old file open reads the new secret.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut file = open_new(&tmp, 0o600).with_context(|| format!("writing {}", tmp.display()))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("writing {}", path.display()))
}

/// A new file with `mode` from its creation; it must not exist yet.
fn open_new(path: &Path, mode: u32) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path)
}

/// Writes a file that must not exist yet (it never replaces one, not even atomically), with
/// `mode` from its creation.
pub fn create_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        anyhow::bail!(
            "creating {}: the directory {} does not exist; make it first (e.g. `mkdir -m 700 {}`)",
            path.display(),
            dir.display(),
            dir.display()
        );
    }
    let mut f = open_new(path, mode)
        .with_context(|| format!("creating {} (it must not exist)", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// A secret file's text, refused if others may read it; the mode is checked on the file that
/// is read, not on its name a moment before.
pub fn read_private(path: &Path) -> Result<zeroize::Zeroizing<String>> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    private_mode(&file.metadata()?, path)?;
    let mut text = zeroize::Zeroizing::new(String::new());
    std::io::Read::read_to_string(&mut file, &mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(text)
}

/// Refuses a secret file others may read (as `ssh` does for keys): it has already leaked.
pub fn check_private(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    private_mode(&meta, path)
}

fn private_mode(meta: &std::fs::Metadata, path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        anyhow::ensure!(
            mode & 0o077 == 0,
            "{} is readable by others (mode {mode:o}); run chmod 600",
            path.display()
        );
    }
    #[cfg(not(unix))]
    let _ = meta;
    Ok(())
}
