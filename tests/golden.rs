//! Golden replay tests: each folder under `tests/golden/` holds input files (`input*.jsonl`,
//! `.csv`, `.parquet`; control records may be mixed in) and the expected `alerts.jsonl`,
//! `commands.jsonl`, `rejects.jsonl`, `evidence.jsonl`, `control.jsonl` and `locks.json`.
//! A mismatch prints a unified diff. `UPDATE_GOLDEN=1 cargo test --release --test golden`
//! rewrites the expected files (review the diff before committing).

mod common;

use common::*;
use similar::TextDiff;
use switchguard::app::replay::{self, Threads};
use switchguard::decode::Tokenizer;
use switchguard::engine::EngineConfig;

#[test]
fn golden_cases() {
    // Relative paths, so the `source` of rejects is the same on every checkout.
    std::env::set_current_dir(root()).unwrap();
    let base = std::path::PathBuf::from("tests/golden");
    let mut cases: Vec<_> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(!cases.is_empty());
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for case in cases {
        let mut inputs: Vec<_> = std::fs::read_dir(&case)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("input")
            })
            .collect();
        inputs.sort();
        let out = tempfile::tempdir().unwrap();
        replay::run(
            &inputs,
            default_pack(),
            None,
            EngineConfig::default(),
            Tokenizer::default(),
            out.path(),
            false,
            Threads::Two,
        )
        .unwrap();
        for name in [
            "alerts.jsonl",
            "commands.jsonl",
            "rejects.jsonl",
            "evidence.jsonl",
            "control.jsonl",
            "locks.json",
        ] {
            let got = read(&out.path().join(name));
            let want_path = case.join(name);
            if update {
                std::fs::write(&want_path, &got).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&want_path).unwrap_or_default();
            if got != want {
                let diff = TextDiff::from_lines(&want, &got)
                    .unified_diff()
                    .header(&format!("{} (expected)", want_path.display()), "(got)")
                    .to_string();
                failures.push(diff);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "golden mismatch:\n{}",
        failures.join("\n")
    );
}
