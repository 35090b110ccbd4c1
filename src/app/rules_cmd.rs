//! `switchguard rules check|test`.

use super::cases;
use super::RulesAction;
use crate::rules::RulePack;
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn command(action: RulesAction) -> Result<ExitCode> {
    let (dir, test, models_dir, scale_out) = match action {
        RulesAction::Check { dir, scale_out } => (dir, false, None, scale_out),
        RulesAction::Test { dir, models } => (dir, true, Some(models), false),
    };
    let dir = dir.unwrap_or_else(|| PathBuf::from("rules"));
    let pack = match RulePack::load_dir(&dir) {
        Ok(p) => p,
        Err(e) => {
            for p in &e.0 {
                println!("{p}");
            }
            println!("{} problem(s) in {}", e.0.len(), dir.display());
            return Ok(ExitCode::from(1));
        }
    };
    let problems = if scale_out {
        crate::engine::shard::check(&pack)
    } else {
        Vec::new()
    };
    if !problems.is_empty() {
        for p in &problems {
            println!("{p}");
        }
        println!("{} problem(s) in {}", problems.len(), dir.display());
        return Ok(ExitCode::from(1));
    }
    if !test {
        println!(
            "ok: {} rules in {} files (digest {})",
            pack.rules.len(),
            pack.files.len(),
            pack.digest
        );
        for note in crate::rules::tables::notes(&pack) {
            let tag = if note.warning { "warning: " } else { "" };
            println!("{tag}{}", note.text);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let models = models_dir.and_then(|d| super::load_models(&d));
    let results = cases::run_all(&pack, models.as_ref());
    let (mut failed, mut skipped) = (0, 0);
    for r in &results {
        if r.skipped {
            skipped += 1;
            println!(
                "skip  {} / {}  (reads a model score; no models loaded)",
                r.rule, r.name
            );
        } else if r.passed() {
            println!("ok    {} / {}", r.rule, r.name);
        } else {
            failed += 1;
            println!("FAIL  {} / {}  ({})", r.rule, r.name, r.file);
            for e in &r.errors {
                println!("        {e}");
            }
            println!("        expected hits on: {:?}", r.expected);
            println!("        got hits on:      {:?}", r.got);
        }
    }
    println!(
        "{} passed, {failed} failed, {skipped} skipped",
        results.len() - failed - skipped
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
