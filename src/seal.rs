//! Secrets at rest: this module owns the daemon's master key file and every
//! use of it. TOTP seeds are sealed with XChaCha20-Poly1305 before they reach
//! the store, bound to their owner's name so a sealed seed copied to another
//! row does not open, and single-use codes (recovery codes) are stored only as
//! keyed hashes, so a stolen database alone yields neither seeds nor codes.
//! Each use gets its own subkey derived from the master key with a distinct
//! label, so the cipher key and the hashing key are never the same bytes.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::TryRng;
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Length of the master key and of every derived subkey, in bytes.
const KEY_LEN: usize = 32;
/// First byte of every sealed blob; lets a later format coexist with this one.
const SEAL_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const SEAL_LABEL: &[u8] = b"rampart seal v1";
const CODE_HASH_LABEL: &[u8] = b"rampart code-hash v1";

/// Errors from loading the key file or opening a sealed value.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key file or its directory could not be read, created or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file the operation was about.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The key file exists but is unusable (wrong length or too-open permissions).
    #[error("key file {path}: {reason}")]
    BadKeyFile {
        /// The offending key file.
        path: PathBuf,
        /// What is wrong with it and how to fix it.
        reason: String,
    },
    /// A sealed value failed authentication or has an unknown format version.
    /// Deliberately carries no detail: the caller cannot act on it differently.
    #[error("sealed value is corrupt, was sealed with another key, or belongs to another owner")]
    Corrupt,
}

/// The 32-byte master key plus the subkeys derived from it.
///
/// All key material is wiped from memory when the value is dropped, and
/// `Debug` never prints it.
pub struct SealKey {
    // The master key is kept (not only the subkeys) so later features can
    // derive further subkeys under new labels without a new key file.
    #[allow(dead_code)]
    master: Zeroizing<[u8; KEY_LEN]>,
    // Derived once here rather than per call: code_hash sits on the login path.
    seal_key: Zeroizing<[u8; KEY_LEN]>,
    code_key: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(***)")
    }
}

impl SealKey {
    /// Loads the 32-byte key file, or creates it (parent directories too)
    /// with 32 random bytes and mode 0600 when it does not exist.
    ///
    /// An existing key file whose mode allows group or other access is
    /// refused with [`SealError::BadKeyFile`], as is one that is not exactly
    /// 32 bytes long: a truncated key must never be silently replaced, since
    /// every sealed seed depends on it.
    pub fn load_or_create(path: &Path) -> Result<SealKey, SealError> {
        match Self::load(path) {
            Err(SealError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        match Self::create(path) {
            // Another process created it between our open and create_new:
            // its key is the one that counts.
            Err(SealError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
                Self::load(path)
            }
            other => other,
        }
    }

    /// Builds a key from raw bytes; for tests and benchmarks.
    pub fn from_bytes(bytes: [u8; 32]) -> SealKey {
        let master = Zeroizing::new(bytes);
        let seal_key = derive(&master, SEAL_LABEL);
        let code_key = derive(&master, CODE_HASH_LABEL);
        SealKey {
            master,
            seal_key,
            code_key,
        }
    }

    /// Encrypts `plaintext` with XChaCha20-Poly1305 under a fresh random
    /// 24-byte nonce and the subkey derived with label "rampart seal v1".
    ///
    /// Output: version byte 1 || nonce || ciphertext+tag. `aad` binds the
    /// ciphertext to its owner (callers pass the user name) so a sealed seed
    /// copied to another user's row fails to open.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        // A 192-bit random nonce makes collisions negligible without any
        // counter state to persist.
        let mut nonce = XNonce::default();
        rand::fill(nonce.as_mut_slice());
        let ciphertext = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            // Encryption only fails for inputs beyond ~256 GiB; seeds are bytes.
            .expect("XChaCha20-Poly1305 encryption of a small buffer cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Decrypts a value produced by [`SealKey::seal`] with the same `aad`.
    ///
    /// Returns [`SealError::Corrupt`] on an unknown version, a short input,
    /// a wrong key or `aad`, or any modified byte.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != SEAL_VERSION {
            return Err(SealError::Corrupt);
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| SealError::Corrupt)?;
        self.cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Corrupt)
    }

    /// Keyed hash for single-use codes: HMAC-SHA256 under the subkey derived
    /// with label "rampart code-hash v1" over
    /// `domain || 0x00 || user || 0x00 || code`, as lowercase hex.
    ///
    /// Keyed (not a plain or slow hash) because codes have little entropy: a
    /// database leak without the key file must not allow offline guessing.
    pub fn code_hash(&self, domain: &str, user: &str, code: &str) -> String {
        let mut mac = hmac(&self.code_key[..]);
        // The NUL separators keep ("ab","c") and ("a","bc") distinct.
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(user.as_bytes());
        mac.update(&[0]);
        mac.update(code.as_bytes());
        to_hex(&mac.finalize().into_bytes())
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Key::from(*self.seal_key))
    }

    fn load(path: &Path) -> Result<SealKey, SealError> {
        let io_err = |source| SealError::Io {
            path: path.to_path_buf(),
            source,
        };
        let bad = |reason: String| SealError::BadKeyFile {
            path: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(bad("not a regular file".to_owned()));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(bad(format!(
                "mode {mode:04o} lets group or others access the master key; run `chmod 600 {}`",
                path.display()
            )));
        }
        // Read one byte more than needed so an over-long file is detected
        // without trusting the metadata length alone.
        let mut buf = Zeroizing::new(Vec::with_capacity(KEY_LEN + 1));
        file.take(KEY_LEN as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(io_err)?;
        if buf.len() != KEY_LEN || meta.len() != KEY_LEN as u64 {
            return Err(bad(format!(
                "expected exactly {KEY_LEN} bytes, found {}",
                meta.len().max(buf.len() as u64)
            )));
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&buf);
        Ok(SealKey::from_bytes(*bytes))
    }

    fn create(path: &Path) -> Result<SealKey, SealError> {
        let io_err = |source| SealError::Io {
            path: path.to_path_buf(),
            source,
        };
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(parent) = parent {
            // Directories we create hold the key, so nobody else needs them.
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io_err)?;
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        // Straight from the OS generator: this key protects everything else.
        rand::rngs::SysRng
            .try_fill_bytes(&mut bytes[..])
            .map_err(|e| io_err(io::Error::other(e)))?;
        // create_new + mode at open time: the file never exists with wider
        // permissions, and an existing file is never overwritten.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io_err)?;
        if let Err(e) = file.write_all(&bytes[..]).and_then(|()| file.sync_all()) {
            // Leave no partial key behind; it would be refused on next start.
            drop(file);
            let _ = fs::remove_file(path);
            return Err(io_err(e));
        }
        // Best effort: make the new directory entry durable too, so a crash
        // cannot lose a key that already sealed seeds.
        if let Ok(dir) = File::open(parent.unwrap_or(Path::new("."))) {
            let _ = dir.sync_all();
        }
        Ok(SealKey::from_bytes(*bytes))
    }
}

fn hmac(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// HKDF-like single-step derivation; enough because the master key is
/// already uniformly random, so no extract step is needed.
fn derive(master: &[u8; KEY_LEN], label: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
    let mut mac = hmac(master);
    mac.update(label);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SealKey {
        SealKey::from_bytes([b; 32])
    }

    #[test]
    fn round_trip() {
        let k = key(7);
        let sealed = k.seal(b"alice", b"JBSWY3DPEHPK3PXP");
        assert_eq!(sealed[0], SEAL_VERSION);
        assert_eq!(sealed.len(), 1 + NONCE_LEN + 16 + TAG_LEN);
        assert_eq!(&**k.open(b"alice", &sealed).unwrap(), b"JBSWY3DPEHPK3PXP");
        // Fresh nonce each time.
        assert_ne!(sealed, k.seal(b"alice", b"JBSWY3DPEHPK3PXP"));
        // Empty plaintext still authenticates.
        let empty = k.seal(b"", b"");
        assert!(k.open(b"", &empty).unwrap().is_empty());
    }

    #[test]
    fn wrong_aad_or_key_fails() {
        let k = key(7);
        let sealed = k.seal(b"alice", b"secret");
        assert!(matches!(k.open(b"bob", &sealed), Err(SealError::Corrupt)));
        assert!(matches!(
            key(8).open(b"alice", &sealed),
            Err(SealError::Corrupt)
        ));
    }

    #[test]
    fn tampering_fails() {
        let k = key(7);
        let sealed = k.seal(b"alice", b"secret");
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert!(
                matches!(k.open(b"alice", &t), Err(SealError::Corrupt)),
                "flip at {i}"
            );
        }
        assert!(matches!(
            k.open(b"alice", &sealed[..sealed.len() - 1]),
            Err(SealError::Corrupt)
        ));
        assert!(matches!(k.open(b"alice", &[]), Err(SealError::Corrupt)));
        let mut v2 = sealed.clone();
        v2[0] = 2;
        assert!(matches!(k.open(b"alice", &v2), Err(SealError::Corrupt)));
    }

    #[test]
    fn load_or_create_creates_0600_and_reloads_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/seal.key");
        let k1 = SealKey::load_or_create(&path).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 32);
        let k2 = SealKey::load_or_create(&path).unwrap();
        let sealed = k1.seal(b"alice", b"seed");
        assert_eq!(&**k2.open(b"alice", &sealed).unwrap(), b"seed");
        assert_eq!(k1.code_hash("d", "u", "c"), k2.code_hash("d", "u", "c"));
    }

    #[test]
    fn group_readable_key_file_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seal.key");
        fs::write(&path, [1u8; 32]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        match SealKey::load_or_create(&path) {
            Err(SealError::BadKeyFile { reason, .. }) => assert!(reason.contains("chmod 600")),
            other => panic!("expected BadKeyFile, got {other:?}"),
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        SealKey::load_or_create(&path).unwrap();
    }

    #[test]
    fn wrong_length_refused() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 31, 33, 64] {
            let path = dir.path().join(format!("k{len}"));
            fs::write(&path, vec![1u8; len]).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            assert!(
                matches!(
                    SealKey::load_or_create(&path),
                    Err(SealError::BadKeyFile { .. })
                ),
                "len {len}"
            );
            // The bad file is left alone, never replaced by a new key.
            assert_eq!(fs::read(&path).unwrap().len(), len);
        }
    }

    #[test]
    fn code_hash_is_deterministic_and_separated() {
        let k = key(7);
        let h = k.code_hash("recovery", "alice", "abcd-efgh");
        assert_eq!(h.len(), 64);
        assert!(
            h.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_eq!(h, k.code_hash("recovery", "alice", "abcd-efgh"));
        assert_ne!(h, k.code_hash("recovery", "bob", "abcd-efgh"));
        assert_ne!(h, k.code_hash("other", "alice", "abcd-efgh"));
        assert_ne!(h, k.code_hash("recovery", "alice", "abcd-efgi"));
        assert_ne!(h, key(8).code_hash("recovery", "alice", "abcd-efgh"));
        // Separators prevent shifting bytes between fields.
        assert_ne!(k.code_hash("a", "bc", "d"), k.code_hash("ab", "c", "d"));
    }

    #[test]
    fn debug_hides_key() {
        assert_eq!(format!("{:?}", key(7)), "SealKey(***)");
    }
}
