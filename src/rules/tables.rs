//! The pack's lookup tables (`[tables.NAME]`): validated, given a slot, and described for
//! `rules check` (what each lists, and what applies to every other key).
//!
//! A table is looked up by a text field of the event (`nocvm_limit` by `currency`). A key it
//! does not list, or an event without that field, gets the table's `default`; without a
//! default, null, which makes every comparison with it false: the rule is silently off for
//! that key. So `rules check` warns about a table without a default, and the engine counts
//! every decision that fell back to a default (`switchguard_table_defaults_total{table}`).

use super::config::TableConfig;
use super::expr::{Lit, Table};
use super::parse::ParsedFile;
use super::{short, Problem, RulePack, MAX_TABLES};
use crate::feature::{Field, Ty};
use compact_str::CompactString;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Build every table of `files`, each with its slot; problems go to `problems`.
pub(super) fn build(
    files: &mut [(String, ParsedFile)],
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, Arc<Table>> {
    let mut tables: BTreeMap<String, Arc<Table>> = BTreeMap::new();
    for (file, f) in files.iter_mut() {
        for t in std::mem::take(&mut f.tables) {
            let mut problem = |m: String| {
                problems.push(Problem {
                    file: file.clone(),
                    rule: None,
                    line: Some(t.line),
                    message: format!("table {}: {m}", short(&t.name)),
                })
            };
            // A table whose keys could not be read was reported by the parser.
            let Some(cfg) = t.cfg else { continue };
            if tables.contains_key(&t.name) {
                problem("defined twice".into());
                continue;
            }
            if tables.len() == MAX_TABLES {
                problem(format!("more than {MAX_TABLES} tables in the rule pack"));
                continue;
            }
            let key = match Field::lookup(&cfg.key) {
                Some((f, Ty::Str)) => Some(f),
                Some(_) => {
                    problem(format!(
                        "key field `{}` is not a text field",
                        short(&cfg.key)
                    ));
                    None
                }
                None => {
                    problem(format!("unknown key field `{}`", short(&cfg.key)));
                    None
                }
            };
            let (values, default) = values(&cfg, &mut problem);
            if let (Some(key), Some(values)) = (key, values) {
                let slot = tables.len();
                let table = Table {
                    name: t.name.clone(),
                    key,
                    values,
                    default,
                    slot,
                };
                tables.insert(t.name, Arc::new(table));
            }
        }
    }
    tables
}

/// A table's entries and default as constants (`None` after a problem): finite numbers, text
/// or booleans, all of one type.
fn values(
    cfg: &TableConfig,
    problem: &mut dyn FnMut(String),
) -> (Option<FxHashMap<CompactString, Lit>>, Lit) {
    let mut values = FxHashMap::default();
    let mut ok = true;
    for (k, v) in &cfg.values {
        match Lit::from_toml(v) {
            Some(l) => {
                values.insert(k.as_str().into(), l);
            }
            None => {
                ok = false;
                problem(format!(
                    "value for {} must be a finite number, a string or a boolean",
                    short(k)
                ));
            }
        }
    }
    let default = match cfg.default.as_ref().map(Lit::from_toml) {
        None => Lit::Null,
        Some(Some(l)) => l,
        Some(None) => {
            ok = false;
            problem("default must be a finite number, a string or a boolean".into());
            Lit::Null
        }
    };
    let kinds = |l: &Lit| std::mem::discriminant(&number_as_one(l));
    let mut all = values.values().chain(std::iter::once(&default));
    let first = all.find(|l| !matches!(l, Lit::Null)).map(kinds);
    if first.is_some_and(|k| all.any(|l| !matches!(l, Lit::Null) && kinds(l) != k)) {
        ok = false;
        problem("values and default must all be of one type (numbers, text or booleans)".into());
    }
    (ok.then_some(values), default)
}

/// Integers and reals are one type for a table (both numbers).
fn number_as_one(l: &Lit) -> Lit {
    match l {
        Lit::Float(_) => Lit::Int(0),
        other => other.clone(),
    }
}

/// What `rules check` says about a table some rule reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNote {
    /// No default: the rules reading it are silently off for every key it does not list.
    pub warning: bool,
    pub text: String,
}

/// One note per table that some loaded rule reads, in slot order.
pub fn notes(pack: &RulePack) -> Vec<TableNote> {
    let mut out = Vec::new();
    for t in &pack.tables {
        let readers: Vec<&str> = pack
            .rules
            .iter()
            .filter(|r| r.tables.iter().any(|x| x.name == t.name))
            .map(|r| r.id.as_str())
            .collect();
        if readers.is_empty() {
            continue;
        }
        let mut keys: Vec<&str> = t.values.keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        let field = t.key.name();
        let head = format!(
            "table {} (by {field}, read by {}): lists {} ({})",
            t.name,
            readers.join(", "),
            keys.len(),
            keys.join(", ")
        );
        let note = match &t.default {
            Lit::Null => TableNote {
                warning: true,
                text: format!(
                    "{head}; NO DEFAULT: for any other or missing {field}, {} is null and \
                     every comparison with it is false, so {} never fire there (add `default`)",
                    t.name,
                    readers.join(", ")
                ),
            },
            d => TableNote {
                warning: false,
                text: format!(
                    "{head}; any other or missing {field}: {} (the default)",
                    d.val().to_json()
                ),
            },
        };
        out.push(note);
    }
    out
}
