//! Compile one [`RuleConfig`] into a runtime [`Rule`], collecting every problem rather than
//! stopping at the first.

use super::config::{ActionKind, ExampleConfig, KindName, Mode, RuleConfig, Severity};
use super::expr::{compile_bool, Expr, Lit, Scope, Table};
use super::fields::{Field, Ty};
use compact_str::CompactString;
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
        window: i64,
        aggs: Vec<Agg>,
        agg_names: Vec<String>,
        fire: Expr,
    },
    Consecutive {
        when: Expr,
        reset: Option<Expr>,
        threshold: u32,
        within: i64,
    },
    Sequence {
        first: Expr,
        then: Expr,
        within: i64,
    },
}

/// A lockout the rule asks for.
#[derive(Debug, Clone)]
pub struct Action {
    pub kind: ActionKind,
    pub ttl: i64,
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

pub fn duration_ms(s: &str) -> Result<i64, String> {
    humantime::parse_duration(s)
        .map(|d| d.as_millis() as i64)
        .map_err(|e| format!("bad duration {s:?} ({e}); use e.g. 90s, 10m, 24h, 30d"))
}

/// Compile `cfg`; on failure return every problem found (messages without file/rule prefix).
pub fn compile_rule(
    cfg: RuleConfig,
    file: &str,
    tables: &BTreeMap<String, Arc<Table>>,
) -> Result<Rule, Vec<String>> {
    let mut errs: Vec<String> = Vec::new();
    let id_ok = !cfg.id.is_empty()
        && cfg
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !id_ok {
        errs.push("id must be non-empty lowercase letters, digits and _".into());
    }
    let mut params = BTreeMap::new();
    for (k, v) in &cfg.params {
        match Lit::from_toml(v) {
            Some(l) => {
                params.insert(k.clone(), l);
            }
            None => errs.push(format!("param `{k}` must be a number, string or boolean")),
        }
    }
    let mut key = Vec::new();
    for k in &cfg.key {
        match Field::lookup(k) {
            Some((f, Ty::Str)) => key.push(f),
            Some(_) => errs.push(format!("key field `{k}` is not a text field")),
            None => errs.push(format!("unknown key field `{k}`")),
        }
    }
    let mut agg_names: Vec<String> = cfg.aggregates.keys().cloned().collect();
    let no_aggs: Vec<String> = Vec::new();
    let scope = Scope {
        aggs: &no_aggs,
        params: &params,
        tables,
    };
    let mut reads: Vec<String> = Vec::new();
    let kind = cfg.kind;
    let cond =
        |name: &str, src: &Option<String>, errs: &mut Vec<String>, reads: &mut Vec<String>| {
            cond_expr(kind, name, src, &scope, errs, reads)
        };
    let dur =
        |name: &str, src: &Option<String>, errs: &mut Vec<String>| dur_ms(kind, name, src, errs);
    let unused = |names: &[(&str, bool)], errs: &mut Vec<String>| {
        for (n, present) in names {
            if *present {
                errs.push(format!("`{n}` is not used by kind {:?}", cfg.kind));
            }
        }
    };
    let needs_key = |errs: &mut Vec<String>| {
        if cfg.key.is_empty() {
            errs.push(format!("kind {:?} needs a `key`", cfg.kind));
        }
    };
    let logic = match cfg.kind {
        KindName::Match => {
            unused(
                &[
                    ("reset", cfg.reset.is_some()),
                    ("first", cfg.first.is_some()),
                    ("then", cfg.then.is_some()),
                    ("threshold", cfg.threshold.is_some()),
                    ("within", cfg.within.is_some()),
                    ("window", cfg.window.is_some()),
                    ("aggregates", !cfg.aggregates.is_empty()),
                    ("fire", cfg.fire.is_some()),
                ],
                &mut errs,
            );
            cond("when", &cfg.when, &mut errs, &mut reads).map(|when| Logic::Match { when })
        }
        KindName::Window => {
            needs_key(&mut errs);
            unused(
                &[
                    ("reset", cfg.reset.is_some()),
                    ("first", cfg.first.is_some()),
                    ("then", cfg.then.is_some()),
                    ("threshold", cfg.threshold.is_some()),
                    ("within", cfg.within.is_some()),
                ],
                &mut errs,
            );
            let when = cond("when", &cfg.when, &mut errs, &mut reads);
            let window = dur("window", &cfg.window, &mut errs);
            if cfg.aggregates.is_empty() {
                errs.push("kind Window needs `aggregates`".into());
            }
            let mut aggs = Vec::new();
            for (name, spec) in &cfg.aggregates {
                match parse_agg(spec, &scope) {
                    Ok((a, names)) => {
                        reads.extend(names);
                        aggs.push(a)
                    }
                    Err(e) => errs.push(format!("aggregate `{name}`: {e}")),
                }
            }
            let fire_scope = Scope {
                aggs: &agg_names,
                params: &params,
                tables,
            };
            let fire = match &cfg.fire {
                None => {
                    errs.push("kind Window needs `fire`".into());
                    None
                }
                Some(s) => match compile_bool(s, &fire_scope) {
                    Ok((e, names)) => {
                        reads.extend(names);
                        Some(e)
                    }
                    Err(e) => {
                        errs.push(format!("fire: {e}"));
                        None
                    }
                },
            };
            match (when, window, fire) {
                (Some(when), Some(window), Some(fire)) if aggs.len() == agg_names.len() => {
                    Some(Logic::Window {
                        when,
                        window,
                        aggs,
                        agg_names: std::mem::take(&mut agg_names),
                        fire,
                    })
                }
                _ => None,
            }
        }
        KindName::Consecutive => {
            needs_key(&mut errs);
            unused(
                &[
                    ("first", cfg.first.is_some()),
                    ("then", cfg.then.is_some()),
                    ("window", cfg.window.is_some()),
                    ("aggregates", !cfg.aggregates.is_empty()),
                    ("fire", cfg.fire.is_some()),
                ],
                &mut errs,
            );
            let when = cond("when", &cfg.when, &mut errs, &mut reads);
            let reset = match &cfg.reset {
                None => Some(None),
                r @ Some(_) => cond("reset", r, &mut errs, &mut reads).map(Some),
            };
            let within = dur("within", &cfg.within, &mut errs);
            let threshold = match cfg.threshold {
                Some(t) if t >= 1 => Some(t),
                Some(_) => {
                    errs.push("threshold must be at least 1".into());
                    None
                }
                None => {
                    errs.push("kind Consecutive needs `threshold`".into());
                    None
                }
            };
            match (when, reset, within, threshold) {
                (Some(when), Some(reset), Some(within), Some(threshold)) => {
                    Some(Logic::Consecutive {
                        when,
                        reset,
                        threshold,
                        within,
                    })
                }
                _ => None,
            }
        }
        KindName::Sequence => {
            needs_key(&mut errs);
            unused(
                &[
                    ("when", cfg.when.is_some()),
                    ("reset", cfg.reset.is_some()),
                    ("threshold", cfg.threshold.is_some()),
                    ("window", cfg.window.is_some()),
                    ("aggregates", !cfg.aggregates.is_empty()),
                    ("fire", cfg.fire.is_some()),
                ],
                &mut errs,
            );
            let first = cond("first", &cfg.first, &mut errs, &mut reads);
            let then = cond("then", &cfg.then, &mut errs, &mut reads);
            let within = dur("within", &cfg.within, &mut errs);
            match (first, then, within) {
                (Some(first), Some(then), Some(within)) => Some(Logic::Sequence {
                    first,
                    then,
                    within,
                }),
                _ => None,
            }
        }
    };
    let action = cfg.action.as_ref().and_then(|a| match duration_ms(&a.ttl) {
        Ok(ttl) if ttl > 0 => Some(Action {
            kind: a.kind,
            ttl,
            reason_code: a.reason_code.as_str().into(),
        }),
        Ok(_) => {
            errs.push("action.ttl must be longer than zero".into());
            None
        }
        Err(e) => {
            errs.push(format!("action.ttl: {e}"));
            None
        }
    });
    let entity = match cfg.entity.as_deref() {
        Some(e) => Entity::parse(e).unwrap_or_else(|| {
            errs.push(format!("entity {e:?} must be card, terminal or merchant"));
            Entity::Card
        }),
        None => match (&cfg.action, key.first()) {
            (Some(a), _) if a.kind == ActionKind::LockTerminal => Entity::Terminal,
            (Some(_), _) => Entity::Card,
            (None, Some(Field::Terminal)) => Entity::Terminal,
            (None, Some(Field::Merchant)) => Entity::Merchant,
            _ => Entity::Card,
        },
    };
    let mut names_ok: Vec<&str> = vec!["count", "threshold", "window", "within", "explain"];
    names_ok.extend(cfg.aggregates.keys().map(String::as_str));
    names_ok.extend(cfg.params.keys().map(String::as_str));
    names_ok.extend(tables.keys().map(String::as_str));
    let reason = match parse_template(&cfg.reason) {
        Ok(p) => {
            for piece in &p {
                if let Piece::Name(n) = piece {
                    if !names_ok.contains(&n.as_str()) && Field::lookup(n).is_none() {
                        errs.push(format!("reason: unknown placeholder {{{n}}}"));
                    }
                }
            }
            p
        }
        Err(e) => {
            errs.push(format!("reason: {e}"));
            Vec::new()
        }
    };
    if cfg.description.trim().is_empty() {
        errs.push("description must not be empty".into());
    }
    match logic {
        Some(logic) if errs.is_empty() => {
            let facts = super::facts::of_logic(&logic);
            let mut read_fields: Vec<Field> = reads
                .iter()
                .filter_map(|n| Field::lookup(n).map(|(f, _)| f))
                .collect();
            read_fields.dedup();
            let mut seen = Vec::new();
            read_fields.retain(|f| {
                let fresh = !seen.contains(f);
                seen.push(*f);
                fresh
            });
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
                reads: read_fields,
                tables: tables
                    .iter()
                    .filter(|(n, _)| reads.contains(n))
                    .map(|(_, t)| t.clone())
                    .collect(),
                examples: cfg.example,
            })
        }
        _ => Err(errs),
    }
}

fn parse_agg(spec: &str, scope: &Scope) -> Result<(Agg, Vec<String>), String> {
    let spec = spec.trim();
    if spec == "count" {
        return Ok((Agg::Count, vec![]));
    }
    let (f, arg) = spec
        .strip_suffix(')')
        .and_then(|s| s.split_once('('))
        .ok_or_else(|| {
            format!("{spec:?}: expected count, sum(field), distinct(field) or count_if(condition)")
        })?;
    match f.trim() {
        "count_if" => compile_bool(arg, scope).map(|(e, n)| (Agg::CountIf(e), n)),
        "sum" | "distinct" => {
            let arg = arg.trim();
            let (field, ty) = Field::lookup(arg).ok_or_else(|| format!("unknown field `{arg}`"))?;
            if f.trim() == "sum" {
                if ty != Ty::Num {
                    return Err(format!("sum({arg}) needs a numeric field"));
                }
                Ok((Agg::Sum(field), vec![arg.to_string()]))
            } else {
                Ok((Agg::Distinct(field), vec![arg.to_string()]))
            }
        }
        other => Err(format!("unknown aggregate `{other}`")),
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

fn cond_expr(
    kind: KindName,
    name: &str,
    src: &Option<String>,
    scope: &Scope,
    errs: &mut Vec<String>,
    reads: &mut Vec<String>,
) -> Option<Expr> {
    match src {
        None => {
            errs.push(format!("kind {kind:?} needs `{name}`"));
            None
        }
        Some(s) => match compile_bool(s, scope) {
            Ok((e, names)) => {
                reads.extend(names);
                Some(e)
            }
            Err(e) => {
                errs.push(format!("{name}: {e}"));
                None
            }
        },
    }
}

fn dur_ms(kind: KindName, name: &str, src: &Option<String>, errs: &mut Vec<String>) -> Option<i64> {
    match src.as_deref().map(duration_ms) {
        None => {
            errs.push(format!("kind {kind:?} needs `{name}`"));
            None
        }
        Some(Ok(0)) => {
            errs.push(format!("{name} must be longer than zero"));
            None
        }
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            errs.push(format!("{name}: {e}"));
            None
        }
    }
}
