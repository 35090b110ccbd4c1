//! The model set: `manifest.json` beside the model files names the set (a digest of its
//! files), how it was trained, and every file with its SHA-256. `train` writes it last, after
//! removing model files of an earlier set that this one does not have; loading reads it first
//! and refuses a directory whose files do not match it (missing, altered, extra or unlisted
//! files: a half-written, mixed or stale set) with every problem reported at once. So a model
//! trained on other data never goes live beside the new set without a word.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Tag of the manifest.
pub const FORMAT: &str = "switchguard-model-set";
pub const VERSION: u32 = 1;
/// The manifest's file name.
pub const FILE: &str = "manifest.json";

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// The set's id: SHA-256 over its file names and digests (first 16 hex digits).
    pub set: String,
    /// `simulated` or `recorded` (see `Training::source`).
    pub source: String,
    /// Training window of the set.
    pub window_start: String,
    pub window_end: String,
    /// File name → `sha256:<hex>`.
    pub files: BTreeMap<String, String>,
}

/// The digest of a file's bytes as the manifest lists it.
pub fn digest(bytes: &[u8]) -> String {
    let h = Sha256::digest(bytes);
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in h {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

impl Manifest {
    /// The manifest of `files` (name → bytes).
    pub fn of(files: &BTreeMap<String, Vec<u8>>, source: &str, window: (&str, &str)) -> Manifest {
        let files: BTreeMap<String, String> =
            files.iter().map(|(n, b)| (n.clone(), digest(b))).collect();
        let mut h = Sha256::new();
        for (n, d) in &files {
            h.update(n.as_bytes());
            h.update([0]);
            h.update(d.as_bytes());
            h.update([0]);
        }
        let set: String = h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Manifest {
            format: FORMAT.into(),
            version: VERSION,
            set,
            source: source.into(),
            window_start: window.0.into(),
            window_end: window.1.into(),
            files,
        }
    }

    /// Read `dir/manifest.json`: `Ok(None)` when there is none.
    pub fn read(dir: &Path) -> Result<Option<Manifest>, String> {
        let p = dir.join(FILE);
        let bytes = match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read: {e}")),
        };
        let m: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| format!("not a valid manifest: {e}"))?;
        if m.format != FORMAT {
            return Err(format!("no \"format\": \"{FORMAT}\" tag"));
        }
        if m.version != VERSION {
            return Err(format!(
                "manifest version {} is not supported (this build reads {VERSION}); retrain",
                m.version
            ));
        }
        for name in m.files.keys() {
            if name.contains('/') || name.contains('\\') || name.starts_with('.') {
                return Err(format!("file name {name:?} is not a plain file name"));
            }
        }
        Ok(Some(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_id_depends_on_every_file_and_its_bytes() {
        let mut f = BTreeMap::from([
            ("a.model.json".to_string(), b"one".to_vec()),
            ("b.model.json".to_string(), b"two".to_vec()),
        ]);
        let a = Manifest::of(&f, "simulated", ("x", "y"));
        assert_eq!(a.set.len(), 16);
        assert!(a.files["a.model.json"].starts_with("sha256:"));
        f.insert("b.model.json".into(), b"two!".to_vec());
        assert_ne!(Manifest::of(&f, "simulated", ("x", "y")).set, a.set);
        assert_eq!(
            digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
