//! Compile one [`RuleConfig`] into a runtime [`Rule`], collecting every problem rather than
//! stopping at the first.

use super::config::{ActionKind, ExampleConfig, Mode, RuleConfig, Severity};
use super::expr::{Expr, Lit, Scope, Table};
use super::short;
use crate::feature::{Field, Ty};
use compact_str::CompactString;
use kinds::{check_any_kind, Kinds};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What kind of entity an alert is about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Card,
    Terminal,
    Merchant,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::Terminal => "terminal",
            Self::Merchant => "merchant",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "card" => Some(Self::Card),
            "terminal" => Some(Self::Terminal),
            "merchant" => Some(Self::Merchant),
            _ => None,
        }
    }
}

/// A window aggregate.
#[derive(Debug, Clone)]
pub enum Agg {
    Count,
    CountIf(Expr),
    Sum(Field),
    Distinct(Field),
}

/// The rule's logic, by kind.
#[derive(Debug, Clone)]
pub enum Logic {
    Match {
        when: Expr,
    },
    Window {
        when: Expr,
        window: Span,
        aggs: Vec<Agg>,
        agg_names: Vec<String>,
        fire: Expr,
    },
    Consecutive {
        when: Expr,
        reset: Option<Expr>,
        threshold: u32,
        within: Span,
    },
    Sequence {
        first: Expr,
        then: Expr,
        within: Span,
    },
}

/// A lockout the rule asks for.
#[derive(Debug, Clone)]
pub struct Action {
    pub kind: ActionKind,
    pub ttl: Span,
    pub reason_code: CompactString,
}

/// A piece of a reason template.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Name(String),
}

/// A compiled, validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: CompactString,
    pub description: String,
    pub severity: Severity,
    pub mode: Mode,
    pub file: String,
    pub key: Vec<Field>,
    pub entity: Entity,
    pub logic: Logic,
    pub action: Option<Action>,
    pub reason: Vec<Piece>,
    pub params: BTreeMap<String, Lit>,
    /// Event fields / features the expressions read: reported in each alert's `features`.
    pub reads: Vec<Field>,
    /// Tables the expressions read: their entry for the event is reported too.
    pub tables: Vec<Arc<Table>>,
    /// Event facts under which one of the rule's conditions can hold (see [`super::facts`]).
    pub facts: u64,
    pub examples: Vec<ExampleConfig>,
}

pub use super::duration::span;
use crate::time::Span;

/// Longest rule id: ids name metrics series, alerts and state.
pub const MAX_ID_LEN: usize = 64;

/// One problem found while compiling a rule: the config key it is about (`""` for the rule
/// as a whole), so the loader can point at that key's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub key: &'static str,
    pub message: String,
}

/// The problems of one rule, collected.
#[derive(Debug, Default)]
struct Errs(Vec<Issue>);

impl Errs {
    fn at(&mut self, key: &'static str, message: impl Into<String>) {
        self.0.push(Issue {
            key,
            message: message.into(),
        });
    }
}

/// Compile `cfg`; on failure return every problem found (messages without file/rule prefix).
/// Keys in `cfg.broken` were already reported by the loader (malformed or missing): they are
/// not reported again, and checks that depend on them are skipped.
pub fn compile_rule(
    cfg: RuleConfig,
    file: &str,
    tables: &BTreeMap<String, Arc<Table>>,
) -> Result<Rule, Vec<Issue>> {
    let mut errs = Errs::default();
    let broken = |k: &str| cfg.broken.contains(k);
    let id_ok = !cfg.id.is_empty()
        && cfg.id.len() <= MAX_ID_LEN
        && cfg
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !id_ok && !broken("id") {
        errs.at(
            "id",
            format!("id must be 1 to {MAX_ID_LEN} lowercase letters, digits and _"),
        );
    }
    let params = params(&cfg, &mut errs);
    let key = key_fields(&cfg, &mut errs);
    let scope = Scope {
        aggs: &[],
        params: &params,
        tables,
    };
    let mut reads: Vec<String> = Vec::new();
    let logic = if broken("kind") {
        check_any_kind(&cfg, &scope, &mut errs, &mut reads);
        None
    } else {
        let mut c = Kinds {
            cfg: &cfg,
            scope: &scope,
            errs: &mut errs,
            reads: &mut reads,
        };
        c.logic()
    };
    let action = action(&cfg, &mut errs);
    let entity = entity(&cfg, &key, &mut errs);
    let reason = reason(&cfg, tables, &mut errs);
    if cfg.description.trim().is_empty() && !broken("description") {
        errs.at("description", "description must not be empty");
    }
    match logic {
        Some(logic) if errs.0.is_empty() && cfg.broken.is_empty() => {
            let facts = super::facts::of_logic(&logic);
            Ok(Rule {
                id: cfg.id.as_str().into(),
                description: cfg.description,
                severity: cfg.severity,
                mode: cfg.mode,
                file: file.to_string(),
                key,
                entity,
                logic,
                action,
                reason,
                params,
                facts,
                reads: reported(&reads),
                tables: tables
                    .iter()
                    .filter(|(n, _)| reads.contains(n))
                    .map(|(_, t)| t.clone())
                    .collect(),
                examples: cfg.example,
            })
        }
        _ => Err(errs.0),
    }
}

/// The rule's constants.
fn params(cfg: &RuleConfig, errs: &mut Errs) -> BTreeMap<String, Lit> {
    let mut params = BTreeMap::new();
    for (k, v) in &cfg.params {
        match Lit::from_toml(v) {
            Some(l) => {
                params.insert(k.clone(), l);
            }
            None => errs.at(
                "params",
                format!(
                    "param `{}` must be a finite number, a string or a boolean",
                    short(k)
                ),
            ),
        }
    }
    params
}

/// The fields of the state key: text fields only.
fn key_fields(cfg: &RuleConfig, errs: &mut Errs) -> Vec<Field> {
    let mut key = Vec::new();
    for k in &cfg.key {
        match Field::lookup(k) {
            Some((f, Ty::Str)) => key.push(f),
            Some(_) => errs.at(
                "key",
                format!("key field `{}` is not a text field", short(k)),
            ),
            None => errs.at("key", format!("unknown key field `{}`", short(k))),
        }
    }
    key
}

/// The fields an alert reports for the names the expressions read, each once.
fn reported(reads: &[String]) -> Vec<Field> {
    let mut out: Vec<Field> = Vec::new();
    let fields = reads
        .iter()
        .filter_map(|n| Field::lookup(n).map(|(f, _)| f));
    for f in fields.flat_map(|f| f.reported().iter().copied()) {
        if !out.contains(&f) {
            out.push(f);
        }
    }
    out
}

/// The lockout, if any: its TTL must be a bounded duration longer than zero.
fn action(cfg: &RuleConfig, errs: &mut Errs) -> Option<Action> {
    let a = cfg.action.as_ref()?;
    match span(&a.ttl) {
        Ok(ttl) if ttl > Span::ZERO => Some(Action {
            kind: a.kind,
            ttl,
            reason_code: a.reason_code.as_str().into(),
        }),
        Ok(_) => {
            errs.at("action", "action.ttl must be longer than zero");
            None
        }
        Err(e) => {
            errs.at("action", format!("action.ttl: {e}"));
            None
        }
    }
}

/// The alert's entity: given, or from the action / the first key field.
fn entity(cfg: &RuleConfig, key: &[Field], errs: &mut Errs) -> Entity {
    match cfg.entity.as_deref() {
        Some(e) => Entity::parse(e).unwrap_or_else(|| {
            let e = short(e);
            errs.at(
                "entity",
                format!("entity {e:?} must be card, terminal or merchant"),
            );
            Entity::Card
        }),
        None => match (&cfg.action, key.first()) {
            (Some(a), _) if a.kind == ActionKind::LockTerminal => Entity::Terminal,
            (Some(_), _) => Entity::Card,
            (None, Some(Field::Terminal)) => Entity::Terminal,
            (None, Some(Field::Merchant)) => Entity::Merchant,
            _ => Entity::Card,
        },
    }
}

/// The reason template, every `{placeholder}` known.
fn reason(cfg: &RuleConfig, tables: &BTreeMap<String, Arc<Table>>, errs: &mut Errs) -> Vec<Piece> {
    let mut names_ok: Vec<&str> = vec!["count", "threshold", "window", "within", "explain"];
    names_ok.extend(cfg.by_kind.aggregates.keys().map(String::as_str));
    names_ok.extend(cfg.params.keys().map(String::as_str));
    names_ok.extend(tables.keys().map(String::as_str));
    match parse_template(&cfg.reason) {
        Ok(p) => {
            for piece in &p {
                if let Piece::Name(n) = piece {
                    if !names_ok.contains(&n.as_str()) && Field::lookup(n).is_none() {
                        let n: String = n.chars().take(60).collect();
                        errs.at("reason", format!("reason: unknown placeholder {{{n}}}"));
                    }
                }
            }
            p
        }
        Err(e) => {
            errs.at("reason", format!("reason: {e}"));
            Vec::new()
        }
    }
}

fn parse_template(s: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('{') {
        if i > 0 {
            out.push(Piece::Text(rest[..i].to_string()));
        }
        let j = rest[i..].find('}').ok_or("unclosed `{`")? + i;
        out.push(Piece::Name(rest[i + 1..j].trim().to_string()));
        rest = &rest[j + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    Ok(out)
}

mod kinds;
