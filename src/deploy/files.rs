//! Writing files the way a deployment must: atomically (a temporary file in
//! the same directory, written, fsynced, given its owner and mode, renamed
//! over the target, then the directory fsynced), so a reader sees the old
//! file or the new one, never a torn one, and a crash leaves one of the two.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Owner and mode of a written file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ownership {
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn io_context(path: &Path, what: &str, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: cannot {what} ({e})", path.display()))
}

/// Writes `content` to `path` atomically with `own`; creates missing parent
/// directories (mode 0755).
pub fn write_atomic(path: &Path, content: &[u8], own: Ownership) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .create(dir)
        .map_err(|e| io_context(dir, "create the directory", e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Named so that remove_stale_temps can tell whose it is.
    let tmp = dir.join(format!(
        ".{name}.certroll-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(own.mode)
            .open(&tmp)
            .map_err(|e| io_context(&tmp, "create a temporary file", e))?;
        f.write_all(content)
            .map_err(|e| io_context(&tmp, "write", e))?;
        if own.uid.is_some() || own.gid.is_some() {
            std::os::unix::fs::fchown(&f, own.uid, own.gid)
                .map_err(|e| io_context(&tmp, "change the owner of", e))?;
        }
        // The umask may have narrowed the mode at creation.
        f.set_permissions(std::fs::Permissions::from_mode(own.mode))
            .map_err(|e| io_context(&tmp, "set the mode of", e))?;
        f.sync_all().map_err(|e| io_context(&tmp, "fsync", e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| io_context(path, "rename into place", e))?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The prefix of `path`'s temporary copies: `.NAME.certroll-`.
fn temp_prefix(path: &Path) -> Option<(&Path, String)> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    let name = path.file_name()?.to_string_lossy();
    Some((dir, format!(".{name}.certroll-")))
}

/// Removes the temporary copies of `path` that a process killed during a
/// write left behind (`.NAME.certroll-PID-N`, PID no longer running): they
/// may hold a private key. Returns what it removed.
pub fn remove_stale_temps(path: &Path) -> Vec<std::path::PathBuf> {
    let Some((dir, prefix)) = temp_prefix(path) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let me = std::process::id();
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        // SAFETY: signal 0 only asks whether the process exists.
        let gone = pid != me
            && unsafe { libc::kill(pid as libc::pid_t, 0) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone && std::fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

/// Whether `path` holds exactly `content`.
pub fn has_content(path: &Path, content: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|c| c == content)
}

/// Whether `path` exists with `own`'s mode (and owner, when one is set).
pub fn has_ownership(path: &Path, own: Ownership) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).is_ok_and(|m| {
        m.mode() & 0o7777 == own.mode
            && own.uid.is_none_or(|u| u == m.uid())
            && own.gid.is_none_or(|g| g == m.gid())
    })
}

/// The uid of a user name (or a number).
pub fn user_id(name: &str) -> Result<u32, String> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    let c = CString::new(name).map_err(|_| format!("bad user name '{name}'"))?;
    // SAFETY: getpwnam returns a pointer into static storage or null; it is
    // read at once, on this thread.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return Err(format!("no user '{name}'"));
    }
    // SAFETY: pw is non-null and points at a valid passwd entry.
    Ok(unsafe { (*pw).pw_uid })
}

/// The gid of a group name (or a number).
pub fn group_id(name: &str) -> Result<u32, String> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    let c = CString::new(name).map_err(|_| format!("bad group name '{name}'"))?;
    // SAFETY: as for getpwnam.
    let gr = unsafe { libc::getgrnam(c.as_ptr()) };
    if gr.is_null() {
        return Err(format!("no group '{name}'"));
    }
    // SAFETY: gr is non-null and points at a valid group entry.
    Ok(unsafe { (*gr).gr_gid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_with_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/key.pem");
        let own = Ownership {
            mode: 0o600,
            uid: None,
            gid: None,
        };
        write_atomic(&p, b"one", own).unwrap();
        assert!(has_content(&p, b"one"));
        assert!(has_ownership(&p, own));
        write_atomic(&p, b"two", Ownership { mode: 0o640, ..own }).unwrap();
        assert!(has_content(&p, b"two"));
        assert!(has_ownership(&p, Ownership { mode: 0o640, ..own }));
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
        assert_eq!(user_id("root").unwrap(), 0);
        assert_eq!(group_id("0").unwrap(), 0);
        assert!(user_id("no-such-user-certroll").is_err());
    }

    #[test]
    fn gives_the_file_its_owner_and_group() {
        use std::os::unix::fs::MetadataExt;
        // As root, hand the file to nobody:nogroup; otherwise to ourselves
        // (the only chown allowed), which still goes through fchown.
        // SAFETY: plain getters without side effects.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let (to_uid, to_gid) = if uid == 0 { (65534, 65534) } else { (uid, gid) };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cert.pem");
        let own = Ownership {
            mode: 0o640,
            uid: Some(to_uid),
            gid: Some(to_gid),
        };
        write_atomic(&p, b"pem", own).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (to_uid, to_gid, 0o640)
        );
        assert!(has_ownership(&p, own));
        // A different owner wanted: the file does not have it.
        assert!(!has_ownership(
            &p,
            Ownership {
                uid: Some(to_uid + 1),
                ..own
            }
        ));
        assert!(!has_ownership(
            &p,
            Ownership {
                gid: Some(to_gid + 1),
                ..own
            }
        ));
    }
}
