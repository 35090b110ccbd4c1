//! Rules: files under `rules/` (TOML), compiled and validated at load time.
//!
//! - [`config`]: the file format as serde types;
//! - what an expression can read is the field table of [`crate::feature`];
//! - [`expr`]: expressions (parsed by evalexpr, compiled to a typed tree);
//! - [`compile`]: config → runtime [`Rule`], every problem collected;
//! - [`exec`]: per-rule keyed state and evaluation.
//!
//! The example cases embedded in rule files run in `app::cases` (they need the engine).

pub mod compile;
pub mod config;
pub mod duration;
pub mod exec;
pub mod expr;
pub mod facts;

pub mod parse;
pub mod tables;
mod toml_guard;

pub use compile::{Entity, Logic, Rule};
pub use config::{Mode, Severity};

use expr::Table;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// One problem in one rule file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub file: String,
    /// The rule's id (`#N`, its place in the file, when it has no usable id).
    pub rule: Option<String>,
    /// The line of the key the problem is about (or of its rule, table or syntax error).
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        match &self.rule {
            Some(r) => write!(f, ": rule {r}: {}", self.message),
            None => write!(f, ": {}", self.message),
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
    /// xxh3 of every file's bytes, in load order: names this exact rule set in reports and
    /// logs, whatever the directory is called or however its path is spelled.
    pub digest: String,
    /// Every lookup table of the pack, in slot order (see [`expr::Table::slot`]).
    pub tables: Vec<Arc<Table>>,
    /// `[[rule]]`s defined, `off` ones included.
    pub defined: usize,
}

/// Most lookup tables in one pack (a table's fall-backs are a bit in a word per event).
pub const MAX_TABLES: usize = 64;

impl RulePack {
    /// Load every `*.toml` under `dir` (sorted by name). A directory without any rule (no
    /// `*.toml` file, or no `[[rule]]` in them) is refused: nothing would be screened.
    pub fn load_dir(dir: &Path) -> Result<RulePack, RuleErrors> {
        let pack = Self::load_dir_allow_empty(dir)?;
        match empty_pack_problem(dir, &pack) {
            Some(p) => Err(RuleErrors(vec![p])),
            None => Ok(pack),
        }
    }

    /// [`RulePack::load_dir`], but a directory without rules gives an empty pack (replay
    /// warns and runs; [`empty_pack_problem`] says what is wrong).
    pub fn load_dir_allow_empty(dir: &Path) -> Result<RulePack, RuleErrors> {
        let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect(),
            Err(e) => {
                return Err(RuleErrors(vec![Problem {
                    file: dir.display().to_string(),
                    rule: None,
                    line: None,
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
                    line: None,
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
            // Content only (length first, so file boundaries count): not the path.
            digest =
                xxhash_rust::xxh3::xxh3_64_with_seed(&(text.len() as u64).to_le_bytes(), digest);
            digest = xxhash_rust::xxh3::xxh3_64_with_seed(text.as_bytes(), digest);
            let mut parsed = parse::parse_file(name, text);
            problems.append(&mut parsed.problems);
            files.push((name.clone(), parsed));
        }
        let tables = tables::build(&mut files, &mut problems);
        let mut rules: Vec<Rule> = Vec::new();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut defined = 0;
        for (file, f) in files {
            for r in f.rules {
                defined += 1;
                let parse::ParsedRule {
                    cfg,
                    label,
                    line,
                    lines,
                } = r;
                let line_of = |key: &str| lines.get(key).copied().unwrap_or(line);
                let problem = |line: usize, message: String| Problem {
                    file: file.clone(),
                    rule: Some(label.clone()),
                    line: Some(line),
                    message,
                };
                if !cfg.broken.contains("id") {
                    if let Some(prev) = seen.insert(cfg.id.clone(), file.clone()) {
                        problems.push(problem(
                            line_of("id"),
                            format!("duplicate rule id (also in {prev})"),
                        ));
                    }
                }
                match compile::compile_rule(cfg, &file, &tables) {
                    Ok(rule) => rules.push(rule),
                    Err(issues) => problems.extend(
                        issues
                            .into_iter()
                            .map(|i| problem(line_of(i.key), i.message)),
                    ),
                }
            }
        }
        if !problems.is_empty() {
            return Err(RuleErrors(problems));
        }
        rules.retain(|r| r.mode != Mode::Off);
        let mut tables: Vec<Arc<Table>> = tables.into_values().collect();
        tables.sort_by_key(|t| t.slot);
        Ok(RulePack {
            rules,
            files: Vec::new(),
            digest: format!("{digest:016x}"),
            tables,
            defined,
        })
    }

    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }
}

/// What is wrong with a pack loaded from `dir` that holds no rule, if it holds none.
pub fn empty_pack_problem(dir: &Path, pack: &RulePack) -> Option<Problem> {
    let message = if pack.files.is_empty() {
        "no rule files (*.toml) in the rules directory: nothing would be screened"
    } else if pack.defined == 0 {
        "no [[rule]] in any rule file of the rules directory: nothing would be screened"
    } else {
        return None;
    };
    Some(Problem {
        file: dir.display().to_string(),
        rule: None,
        line: None,
        message: message.into(),
    })
}

/// A name or text as quoted in a message: at most 60 characters.
pub(crate) fn short(s: &str) -> String {
    clip(s, 60)
}

/// `s` cut to at most `n` characters (marked `...`): hostile input never floods a message.
pub(crate) fn clip(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fuzz;
#[cfg(test)]
mod tests_hostile;
