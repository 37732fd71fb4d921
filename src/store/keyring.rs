//! Private keys at rest: sealed with AES-256-GCM under a master key kept in
//! the data directory (`master.key`, 32 random bytes, mode 0600, created on
//! first use). The certificate's thumbprint is the additional authenticated
//! data, so a sealed key moved to another certificate's row fails to open.
//!
//! Blob layout: `0x01` (format version) ‖ 12-byte random nonce ‖ ciphertext ‖
//! 16-byte tag. The store records an identifier of the master key (a hash
//! of it) so that a wrong or replaced key file is named as such.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::StoreError;

const BLOB_VERSION: u8 = 1;
const KEY_LEN: usize = 32;

pub struct MasterKey {
    key: LessSafeKey,
    /// First 16 hex digits of SHA-256 over the key bytes.
    pub id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish()
    }
}

fn io_err<'a>(
    path: &'a Path,
    what: &'static str,
) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |error| StoreError::Io {
        path: path.to_path_buf(),
        what,
        error,
    }
}

impl MasterKey {
    fn from_bytes(bytes: &[u8]) -> MasterKey {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte key"));
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let id = crate::cert::x509::hex_upper(&digest.as_ref()[..8]);
        MasterKey { key, id }
    }

    /// Reads the key file, refusing one that others can read.
    pub fn load(path: &Path) -> Result<MasterKey, StoreError> {
        let mut file = OpenOptions::new()
            .read(true)
            .open(path)
            .map_err(io_err(path, "open the master key"))?;
        let mode = file
            .metadata()
            .map_err(io_err(path, "stat the master key"))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(StoreError::KeyFilePermissions {
                path: path.to_path_buf(),
                mode: mode & 0o777,
            });
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(KEY_LEN));
        file.read_to_end(&mut bytes)
            .map_err(io_err(path, "read the master key"))?;
        if bytes.len() != KEY_LEN {
            return Err(StoreError::MasterKeyCorrupt(path.to_path_buf()));
        }
        Ok(MasterKey::from_bytes(&bytes))
    }

    /// Creates a new key file (mode 0600, never overwriting one), or loads
    /// the one another process created first. The file appears under its
    /// name only once complete: it is written under a temporary name, then
    /// hard-linked into place (which fails if the name exists).
    pub fn create(path: &Path) -> Result<MasterKey, StoreError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| StoreError::Random)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // On PostgreSQL nothing else needs the data directory.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|error| StoreError::Io {
                    path: dir.to_path_buf(),
                    what: "create the directory of the master key",
                    error,
                })?;
        }
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| {
                if let Some(dir) = path.parent() {
                    adopt_dir_owner(&f, dir)?;
                }
                f.write_all(bytes.as_ref())?;
                f.sync_all()
            });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_err(path, "create the master key")(e));
        }
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return MasterKey::load(path);
            }
            Err(e) => return Err(io_err(path, "create the master key")(e)),
        }
        if let Some(dir) = path.parent() {
            sync_dir(dir);
        }
        Ok(MasterKey::from_bytes(bytes.as_ref()))
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| StoreError::Random)?;
        // Room for the tag up front, so no reallocation leaves a plaintext
        // copy behind in freed memory.
        let mut buf = Vec::with_capacity(plaintext.len() + AES_256_GCM.tag_len());
        buf.extend_from_slice(plaintext);
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| StoreError::Random)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(BLOB_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        // The plaintext copy in `buf` was encrypted in place: nothing in
        // clear is left behind.
        Ok(out)
    }

    pub fn open(&self, blob: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        if blob.len() < 1 + NONCE_LEN + AES_256_GCM.tag_len() || blob[0] != BLOB_VERSION {
            return Err(StoreError::KeyUnsealFailed);
        }
        let nonce = Nonce::try_assume_unique_for_key(&blob[1..1 + NONCE_LEN])
            .map_err(|_| StoreError::KeyUnsealFailed)?;
        let mut buf = Zeroizing::new(blob[1 + NONCE_LEN..].to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| StoreError::KeyUnsealFailed)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

/// Flushes a directory entry (after creating or renaming a file in it).
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A file certroll has just created in the data directory belongs to the
/// directory's owner when certroll runs as root there: `sudo certroll
/// import` on the service's store must not leave a root-owned 0600
/// `master.key` or `certroll.db` that the service user cannot read.
/// (SQLite does the same for its -wal and -shm files.) A file created by
/// anyone else already has the right owner.
pub(crate) fn adopt_dir_owner(file: &std::fs::File, dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mine = file.metadata()?;
    if mine.uid() != 0 {
        return Ok(());
    }
    let d = std::fs::metadata(dir)?;
    if d.uid() == 0 {
        return Ok(());
    }
    std::os::unix::fs::fchown(file, Some(d.uid()), Some(d.gid()))
}

pub fn master_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("master.key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_and_bind_the_aad() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let key = MasterKey::create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let blob = key.seal(b"secret key bytes", b"THUMB1").unwrap();
        assert!(!blob.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            key.open(&blob, b"THUMB1").unwrap().as_slice(),
            b"secret key bytes"
        );
        assert!(matches!(
            key.open(&blob, b"THUMB2"),
            Err(StoreError::KeyUnsealFailed)
        ));

        let again = MasterKey::load(&path).unwrap();
        assert_eq!(again.id, key.id);
        // A second create finds the file and loads it instead of replacing it.
        assert_eq!(MasterKey::create(&path).unwrap().id, key.id);
    }

    #[test]
    fn a_readable_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            MasterKey::load(&path),
            Err(StoreError::KeyFilePermissions { mode: 0o644, .. })
        ));
    }
}
