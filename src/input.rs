//! Bounded reads of the files an operator names: certificates, keys,
//! passwords, configuration, trust bundles, secrets. Each is a regular file
//! no larger than its limit; a FIFO, a device, a directory or a socket is
//! refused before a byte is read (opened non-blocking, so a FIFO without a
//! writer cannot hang the command), and a file that grows while it is read
//! is cut at the limit and refused.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Certificates, keys, PFX files, CA answers, trust bundles.
pub const MAX_CERT_FILE: u64 = 16 << 20;
/// Passwords, secrets and configuration files.
pub const MAX_TEXT_FILE: u64 = 1 << 20;

/// Why a file could not be read. The display names no path: callers put
/// the path (and what the file is for) in front.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{0}")]
    Io(std::io::Error),
    #[error("not a regular file (it is {0})")]
    NotRegular(&'static str),
    #[error("larger than the {0} certroll reads")]
    TooLarge(String),
}

impl InputError {
    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, InputError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// "16 MiB", "1 MiB", "512 KiB".
pub fn size_name(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

fn kind(ft: &std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO or pipe"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Reads the whole of `path`, a regular file of at most `limit` bytes.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(InputError::Io)?;
    let meta = file.metadata().map_err(InputError::Io)?;
    if !meta.file_type().is_file() {
        return Err(InputError::NotRegular(kind(&meta.file_type())));
    }
    if meta.len() > limit {
        return Err(InputError::TooLarge(size_name(limit)));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut data)
        .map_err(InputError::Io)?;
    if data.len() as u64 > limit {
        return Err(InputError::TooLarge(size_name(limit)));
    }
    Ok(data)
}

/// Reads `path` as UTF-8 text of at most `limit` bytes; `None` for text
/// that is not UTF-8.
pub fn read_text(path: &Path, limit: u64) -> Result<Option<String>, InputError> {
    Ok(String::from_utf8(read(path, limit)?).ok())
}

/// Reads one line (without its line ending) from `reader`, at most `limit`
/// bytes: `/dev/zero` on standard input ends in an error, not in memory
/// exhaustion.
pub fn read_line(reader: &mut impl std::io::BufRead, limit: u64) -> Result<Vec<u8>, InputError> {
    let mut line = Vec::new();
    std::io::BufRead::read_until(&mut reader.by_ref().take(limit + 1), b'\n', &mut line)
        .map_err(InputError::Io)?;
    if line.len() as u64 > limit {
        line.iter_mut().for_each(|b| *b = 0);
        return Err(InputError::TooLarge(size_name(limit)));
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    Ok(line)
}

/// A secret (password, webhook secret, PFX password) from the first line
/// of `file`, else from the environment variable `env`; `None` when
/// neither is configured. `what` names it in errors.
pub fn secret(
    file: Option<&Path>,
    env: Option<&str>,
    what: &str,
) -> Result<Option<zeroize::Zeroizing<String>>, String> {
    if let Some(path) = file {
        let data = zeroize::Zeroizing::new(
            read(path, MAX_TEXT_FILE)
                .map_err(|e| format!("{}: cannot read the {what}: {e}", path.display()))?,
        );
        let mut reader = &data[..];
        let line = read_line(&mut reader, MAX_TEXT_FILE)
            .map_err(|e| format!("{}: cannot read the {what}: {e}", path.display()))?;
        return String::from_utf8(line)
            .map(|s| Some(zeroize::Zeroizing::new(s)))
            .map_err(|_| format!("{}: the {what} is not UTF-8 text", path.display()));
    }
    if let Some(var) = env {
        return match std::env::var(var) {
            Ok(v) => Ok(Some(zeroize::Zeroizing::new(v))),
            Err(_) => Err(format!("the {what} variable {var} is not set")),
        };
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(read(&p, 5).unwrap(), b"hello");
        assert!(matches!(read(&p, 4), Err(InputError::TooLarge(_))));
        assert!(
            read(&dir.path().join("missing"), 5)
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn devices_directories_and_fifos_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read(Path::new("/dev/zero"), MAX_CERT_FILE),
            Err(InputError::NotRegular("a character device"))
        ));
        assert!(matches!(
            read(dir.path(), MAX_CERT_FILE),
            Err(InputError::NotRegular("a directory"))
        ));
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // No writer: a blocking open would hang here.
        assert!(matches!(
            read(&fifo, MAX_CERT_FILE),
            Err(InputError::NotRegular("a FIFO or pipe"))
        ));
    }

    #[test]
    fn a_line_is_bounded() {
        let mut zeros = std::io::BufReader::new(std::io::repeat(0));
        assert!(matches!(
            read_line(&mut zeros, 1024),
            Err(InputError::TooLarge(_))
        ));
        let mut text = std::io::Cursor::new(b"pw\r\nrest".to_vec());
        assert_eq!(read_line(&mut text, 1024).unwrap(), b"pw");
        assert_eq!(size_name(16 << 20), "16 MiB");
    }
}
