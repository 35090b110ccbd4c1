//! Rules: files under `rules/` (TOML), compiled and validated at load time.
//!
//! - [`config`]: the file format as serde types;
//! - [`fields`]: what an expression can read;
//! - [`expr`]: expressions (parsed by evalexpr, compiled to a typed tree);
//! - [`compile`]: config → runtime [`Rule`], every problem collected;
//! - [`exec`]: per-rule keyed state and evaluation.
//!
//! The example cases embedded in rule files run in `app::cases` (they need the engine).

pub mod compile;
pub mod config;
pub mod exec;
pub mod expr;
pub mod facts;
pub mod fields;

pub use compile::{Entity, Logic, Rule};
pub use config::{Mode, Severity};

use config::RuleFile;
use expr::{Lit, Table};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// One problem in one rule file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub file: String,
    pub rule: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Some(r) => write!(f, "{}: rule {r}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Loading a rule pack failed; carries every problem found in every file.
#[derive(Debug, Error)]
#[error("{} problem(s) in rules:\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
pub struct RuleErrors(pub Vec<Problem>);

/// A validated set of rules, ready for the engine.
#[derive(Debug, Clone, Default)]
pub struct RulePack {
    pub rules: Vec<Rule>,
    pub files: Vec<PathBuf>,
    /// xxh3 of every file's path and bytes: names this exact rule set in reports and logs.
    pub digest: String,
}

impl RulePack {
    /// Load every `*.toml` under `dir` (sorted by name).
    pub fn load_dir(dir: &Path) -> Result<RulePack, RuleErrors> {
        let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect(),
            Err(e) => {
                return Err(RuleErrors(vec![Problem {
                    file: dir.display().to_string(),
                    rule: None,
                    message: format!("cannot read rules directory: {e}"),
                }]))
            }
        };
        paths.sort();
        let mut sources = Vec::new();
        let mut problems = Vec::new();
        for p in &paths {
            match std::fs::read_to_string(p) {
                Ok(s) => sources.push((p.display().to_string(), s)),
                Err(e) => problems.push(Problem {
                    file: p.display().to_string(),
                    rule: None,
                    message: format!("cannot read: {e}"),
                }),
            }
        }
        match Self::from_sources(&sources) {
            Ok(mut pack) if problems.is_empty() => {
                pack.files = paths;
                Ok(pack)
            }
            Ok(_) => Err(RuleErrors(problems)),
            Err(RuleErrors(mut more)) => {
                problems.append(&mut more);
                Err(RuleErrors(problems))
            }
        }
    }

    /// Build from (file name, TOML text) pairs.
    pub fn from_sources(sources: &[(String, String)]) -> Result<RulePack, RuleErrors> {
        let mut problems = Vec::new();
        let mut files = Vec::new();
        let mut digest = 0u64;
        for (name, text) in sources {
            digest = xxhash_rust::xxh3::xxh3_64_with_seed(name.as_bytes(), digest);
            digest = xxhash_rust::xxh3::xxh3_64_with_seed(text.as_bytes(), digest);
            match toml::from_str::<RuleFile>(text) {
                Ok(f) => files.push((name.clone(), f)),
                Err(e) => problems.push(Problem {
                    file: name.clone(),
                    rule: None,
                    message: e.to_string().trim().replace('\n', " ").replace("  ", " "),
                }),
            }
        }
        let mut tables: BTreeMap<String, Arc<Table>> = BTreeMap::new();
        for (file, f) in &mut files {
            for (name, t) in std::mem::take(&mut f.tables) {
                let problem = |m: String| Problem {
                    file: file.clone(),
                    rule: None,
                    message: format!("table {name}: {m}"),
                };
                if tables.contains_key(&name) {
                    problems.push(problem("defined twice".into()));
                    continue;
                }
                let Some((key, _)) = fields::Field::lookup(&t.key) else {
                    problems.push(problem(format!("unknown key field `{}`", t.key)));
                    continue;
                };
                let mut values = rustc_hash::FxHashMap::default();
                let mut ok = true;
                for (k, v) in &t.values {
                    match Lit::from_toml(v) {
                        Some(l) => {
                            values.insert(k.as_str().into(), l);
                        }
                        None => {
                            ok = false;
                            problems.push(problem(format!("value for {k} must be a scalar")));
                        }
                    }
                }
                let default = match t.default.as_ref().map(Lit::from_toml) {
                    None => Lit::Null,
                    Some(Some(l)) => l,
                    Some(None) => {
                        ok = false;
                        problems.push(problem("default must be a scalar".into()));
                        Lit::Null
                    }
                };
                if ok {
                    tables.insert(
                        name.clone(),
                        Arc::new(Table {
                            name,
                            key,
                            values,
                            default,
                        }),
                    );
                }
            }
        }
        let mut rules: Vec<Rule> = Vec::new();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (file, f) in files {
            for cfg in f.rule {
                let id = cfg.id.clone();
                if let Some(prev) = seen.insert(id.clone(), file.clone()) {
                    problems.push(Problem {
                        file: file.clone(),
                        rule: Some(id.clone()),
                        message: format!("duplicate rule id (also in {prev})"),
                    });
                }
                match compile::compile_rule(cfg, &file, &tables) {
                    Ok(r) => rules.push(r),
                    Err(errs) => problems.extend(errs.into_iter().map(|message| Problem {
                        file: file.clone(),
                        rule: Some(id.clone()),
                        message,
                    })),
                }
            }
        }
        if !problems.is_empty() {
            return Err(RuleErrors(problems));
        }
        rules.retain(|r| r.mode != Mode::Off);
        Ok(RulePack {
            rules,
            files: Vec::new(),
            digest: format!("{digest:016x}"),
        })
    }

    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }
}

#[cfg(test)]
mod tests;
