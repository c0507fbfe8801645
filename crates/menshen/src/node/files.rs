//! Files at rest (AUTH-3, KEY-3, AUD-3): the data directory is the node's
//! alone (0700) and the files the node creates there are 0600. A data
//! directory that group or others can read or enter is refused at start-up,
//! naming the path, its mode and the fix; so is a master key file (checked
//! where the key is read, `MasterKey::from_file`).

use std::path::Path;

use anyhow::{bail, Context};

/// Mode of the data directory and of directories the node creates in it.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the files the node creates in the data directory.
pub const FILE_MODE: u32 = 0o600;

/// Create `dir` (and missing parents of it) with mode 0700, or check that an
/// existing one gives group and others no access at all.
pub fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => bail!("data_dir: {} is not a directory", dir.display()),
        Ok(m) => check_mode(dir, &m, "data_dir", "700"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_private_dir(dir)
            .with_context(|| format!("data_dir: cannot create {}", dir.display())),
        Err(e) => Err(e).with_context(|| format!("data_dir: cannot read {}", dir.display())),
    }
}

/// Create `dir` with mode 0700 if it is missing (parents too; those get the
/// usual mode, they are not the node's).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(DIR_MODE);
    }
    match b.create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        r => r,
    }
}

/// Make sure `path` exists with mode 0600 before another component (SQLite)
/// opens it: created 0600 if missing, tightened to 0600 if a file the node
/// made earlier is wider. SQLite gives its `-wal` and `-shm` files the mode
/// of the database file, so they follow; existing ones are tightened too.
pub fn private_db_file(path: &Path) -> anyhow::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(FILE_MODE);
    }
    drop(
        o.open(path)
            .with_context(|| format!("data_dir: cannot create {}", path.display()))?,
    );
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        tighten(Path::new(&p))?;
    }
    Ok(())
}

/// Write `data` to `path` (created or truncated) with mode 0600.
pub fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(FILE_MODE);
    }
    let mut f = o
        .open(path)
        .with_context(|| format!("data_dir: cannot write {}", path.display()))?;
    f.write_all(data)
        .with_context(|| format!("data_dir: cannot write {}", path.display()))?;
    tighten(path)
}

/// Set an existing file of the node's to 0600 if group or others have any
/// access to it (a file left by an earlier version); missing files are fine.
fn tighten(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let m = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE))
                .with_context(|| {
                    format!(
                        "{} has mode {mode:04o}; cannot set it to 0600 (run `chmod 600 {}`)",
                        path.display(),
                        path.display()
                    )
                })?;
            tracing::info!(path = %path.display(), old_mode = format!("{mode:04o}"), "file set to mode 0600");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Refuse a path group or others can access; names the setting, the path,
/// its mode and the `chmod` that fixes it.
fn check_mode(path: &Path, meta: &std::fs::Metadata, field: &str, fix: &str) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "{field}: {} is accessible by group or others (mode {mode:04o}); it holds the store and the audit log: run `chmod {fix} {}`",
                path.display(),
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (path, meta, field, fix);
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn data_dir_is_created_0700_and_an_open_one_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/data");
        prepare_data_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
        prepare_data_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o750)).unwrap();
        let e = prepare_data_dir(&d).unwrap_err().to_string();
        assert!(e.contains("0750") && e.contains("chmod 700"), "{e}");
        assert!(e.contains(&d.display().to_string()), "{e}");
    }

    #[test]
    fn db_file_is_created_0600_and_a_wide_one_tightened() {
        let t = tempfile::tempdir().unwrap();
        let db = t.path().join("x.db");
        private_db_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        let wal = t.path().join("x.db-wal");
        std::fs::write(&wal, b"").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o644)).unwrap();
        private_db_file(&db).unwrap();
        assert_eq!((mode(&db), mode(&wal)), (0o600, 0o600));
    }
}
