//! Card-number protection, shared by every layer: find PAN-shaped digit runs in any text
//! ([`scan`]), tokenise them at ingest ([`Tokenizer`]), mask them in everything emitted
//! ([`mask`]: alerts, commands, rejects, reports, logs).
//!
//! The token is a keyed HMAC-SHA256 of the PAN's digits (truncated to 96 bits, base64url):
//! stable for a given key, so the switch holding the same key can map a lock command back to
//! its card, and useless to anyone without the key. The `hmac`/`sha2` crates are RustCrypto's
//! audited, widely used implementations; with SHA-NI a token costs ~100 ns.

pub mod mask;
pub mod scan;

pub use mask::{mask, redact, redact_bytes, redact_json, redact_truncated};

use base64::Engine as _;
use compact_str::CompactString;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A development key used when none is configured. Tokens made with it are not secret.
pub const DEV_KEY: &[u8] = b"switchguard-development-key-not-for-production";
/// Shortest accepted tokenisation key, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

/// Turns clear PANs into tokens. Cloning the keyed MAC state avoids re-hashing the key per PAN.
#[derive(Clone)]
pub struct Tokenizer {
    mac: Hmac<Sha256>,
    dev: bool,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokenizer(<key>)")
    }
}

impl Tokenizer {
    pub fn new(key: &[u8]) -> Self {
        Self {
            mac: Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length"),
            dev: key == DEV_KEY,
        }
    }

    /// Whether this is the public development key (tokens are then not secret).
    pub fn is_dev_key(&self) -> bool {
        self.dev
    }

    /// `tok_` followed by 16 base64url characters (96 bits of the HMAC of the digits).
    pub fn token(&self, pan: &str) -> CompactString {
        let mut mac = self.mac.clone();
        mac.update(pan.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut buf = [0u8; 16];
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode_slice(&digest[..12], &mut buf)
            .expect("16 bytes hold 12 bytes of base64");
        let mut out = CompactString::with_capacity(20);
        out.push_str("tok_");
        out.push_str(std::str::from_utf8(&buf[..n]).expect("base64 is ASCII"));
        out
    }
}

impl Default for Tokenizer {
    fn default() -> Self {
        Self::new(DEV_KEY)
    }
}

/// `v` as JSON with every PAN-shaped run masked ([`redact_json`]): how every JSON output
/// (alerts, commands, rejects, reports, the DLQ) is written.
pub fn masked_json<T: serde::Serialize>(v: &T) -> serde_json::Result<Vec<u8>> {
    let raw = serde_json::to_vec(v)?;
    Ok(match redact_json(&raw) {
        std::borrow::Cow::Borrowed(_) => raw,
        std::borrow::Cow::Owned(m) => m,
    })
}

/// [`masked_json`], pretty-printed (`report.json`).
pub fn masked_json_pretty<T: serde::Serialize>(v: &T) -> serde_json::Result<Vec<u8>> {
    let raw = serde_json::to_vec_pretty(v)?;
    Ok(redact_json(&raw).into_owned())
}

/// Whether `s` is a plausible PAN as the `pan` field carries it: 12 to 19 ASCII digits.
pub fn is_pan(s: &str) -> bool {
    (12..=19).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Why the tokenisation key could not be used. Every one stops the process (exit 2): a
/// service tokenising with the wrong key gives the switch targets it cannot map back.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("reading token key file {path}: {err}")]
    Unreadable { path: PathBuf, err: std::io::Error },
    #[error("token key from {from} is empty")]
    Empty { from: String },
    #[error("token key from {from} is {len} bytes; at least {MIN_KEY_BYTES} are required")]
    TooShort { from: String, len: usize },
    #[error(
        "token key file {path} and SWITCHGUARD_TOKEN_KEY hold different keys; set one of them"
    )]
    Conflict { path: PathBuf },
}

/// Where the key is to come from. `Missing` is decided by the caller (replay may fall back to
/// the development key with a warning; the service refuses).
#[derive(Debug)]
pub enum KeySource {
    Key(Tokenizer),
    Missing,
}

/// Key bytes as configured, with trailing line endings (`\n`, `\r\n`) removed: a key file
/// written by `echo` and the same key in the environment give the same tokens.
fn trim_key(mut k: Vec<u8>) -> Vec<u8> {
    while matches!(k.last(), Some(b'\n' | b'\r')) {
        k.pop();
    }
    k
}

fn check(key: Vec<u8>, from: &str) -> Result<Vec<u8>, KeyError> {
    let key = trim_key(key);
    let from = from.to_string();
    match key.len() {
        0 => Err(KeyError::Empty { from }),
        len if len < MIN_KEY_BYTES => Err(KeyError::TooShort { from, len }),
        _ => Ok(key),
    }
}

/// The tokenisation key from a key file and/or the `SWITCHGUARD_TOKEN_KEY` value (raw bytes:
/// a key need not be UTF-8). Both given must agree.
pub fn load_key(file: Option<&Path>, env: Option<OsString>) -> Result<KeySource, KeyError> {
    use std::os::unix::ffi::OsStringExt;
    let from_env = env
        .map(|v| check(v.into_vec(), "SWITCHGUARD_TOKEN_KEY"))
        .transpose()?;
    let from_file = match file {
        None => None,
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|err| KeyError::Unreadable {
                path: p.to_path_buf(),
                err,
            })?;
            Some(check(bytes, &p.display().to_string())?)
        }
    };
    Ok(match (from_file, from_env) {
        (Some(f), Some(e)) if f != e => {
            return Err(KeyError::Conflict {
                path: file.expect("file given").to_path_buf(),
            })
        }
        (Some(k), _) | (None, Some(k)) => KeySource::Key(Tokenizer::new(&k)),
        (None, None) => KeySource::Missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    #[test]
    fn token_is_keyed_stable_and_hides_the_pan() {
        let a = Tokenizer::new(b"k1");
        let b = Tokenizer::new(b"k2");
        let pan = "6225880123456789";
        assert_eq!(a.token(pan), a.token(pan));
        assert_ne!(a.token(pan), b.token(pan));
        assert_ne!(a.token(pan), a.token("6225880123456788"));
        let t = a.token(pan);
        assert!(t.starts_with("tok_") && t.len() == 20, "{t}");
        assert!(!t.contains("0123456789"));
    }

    fn tok(s: KeySource) -> CompactString {
        match s {
            KeySource::Key(t) => t.token("6225880123456789"),
            KeySource::Missing => panic!("no key"),
        }
    }

    #[test]
    fn key_file_and_environment_agree_and_problems_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key");
        std::fs::write(&f, b"0123456789abcdef-secret\r\n").unwrap();
        let env = || Some(OsString::from("0123456789abcdef-secret\n"));
        let a = tok(load_key(Some(&f), None).unwrap());
        let b = tok(load_key(None, env()).unwrap());
        assert_eq!(a, b, "a trailing newline does not change the key");
        assert_eq!(tok(load_key(Some(&f), env()).unwrap()), a);
        // Not UTF-8: a key all the same, not "no key".
        let raw = OsString::from_vec(vec![0xff; 20]);
        assert_ne!(tok(load_key(None, Some(raw)).unwrap()), a);
        assert!(matches!(load_key(None, None), Ok(KeySource::Missing)));
        let short = load_key(None, Some(OsString::from("short\n")));
        assert!(matches!(short, Err(KeyError::TooShort { len: 5, .. })));
        assert!(matches!(
            load_key(None, Some(OsString::from("\n"))),
            Err(KeyError::Empty { .. })
        ));
        let other = Some(OsString::from("another-key-of-enough-length"));
        assert!(matches!(
            load_key(Some(&f), other),
            Err(KeyError::Conflict { .. })
        ));
        assert!(matches!(
            load_key(Some(&dir.path().join("missing")), None),
            Err(KeyError::Unreadable { .. })
        ));
    }
}
