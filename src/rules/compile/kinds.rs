//! The kind-specific part of compiling a rule: the settings each kind needs and refuses, its
//! conditions, durations, window aggregates and `fire`.

use super::{Agg, Errs, Logic};
use crate::feature::{Field, Ty};
use crate::rules::config::{KindConfig, RuleConfig};
use crate::rules::duration::span;
use crate::rules::exec::MAX_AGGS;
use crate::rules::expr::{compile_bool, Expr, Scope};
use crate::rules::short;
use crate::time::Span;
use std::collections::BTreeMap;

/// Without a valid `kind`, still check every expression and duration the rule gives, so
/// their problems are reported in the same run.
pub(super) fn check_any_kind(
    cfg: &RuleConfig,
    scope: &Scope,
    errs: &mut Errs,
    reads: &mut Vec<String>,
) {
    let mut c = Kinds {
        cfg,
        scope,
        errs,
        reads,
    };
    let k = &cfg.by_kind;
    for (name, src) in [
        ("when", &k.when),
        ("reset", &k.reset),
        ("first", &k.first),
        ("then", &k.then),
    ] {
        if src.is_some() {
            c.cond(name, src);
        }
    }
    for (name, src) in [("window", &k.window), ("within", &k.within)] {
        if src.is_some() {
            c.dur(name, src);
        }
    }
    if !k.aggregates.is_empty() || k.fire.is_some() {
        c.window_parts(&k.aggregates, &k.fire);
    }
}

/// The kind-specific part of a rule's compilation.
pub(super) struct Kinds<'a, 's> {
    pub cfg: &'a RuleConfig,
    pub scope: &'a Scope<'s>,
    pub errs: &'a mut Errs,
    pub reads: &'a mut Vec<String>,
}

impl Kinds<'_, '_> {
    pub(super) fn logic(&mut self) -> Option<Logic> {
        let (settings, unused) = self.cfg.by_kind.for_kind(self.cfg.kind);
        match settings {
            KindConfig::Match(m) => {
                self.unused(&unused);
                self.cond("when", m.when).map(|when| Logic::Match { when })
            }
            KindConfig::Window(w) => {
                self.needs_key();
                self.unused(&unused);
                let when = self.cond("when", w.when);
                let window = self.dur("window", w.window);
                let (aggs, fire) = self.window_parts(w.aggregates, w.fire);
                Some(Logic::Window {
                    when: when?,
                    window: window?,
                    aggs: aggs?,
                    agg_names: w.aggregates.keys().cloned().collect(),
                    fire: fire?,
                })
            }
            KindConfig::Consecutive(c) => {
                self.needs_key();
                self.unused(&unused);
                let when = self.cond("when", c.when);
                let reset = match c.reset {
                    None => Some(None),
                    r @ Some(_) => self.cond("reset", r).map(Some),
                };
                let within = self.dur("within", c.within);
                let threshold = match *c.threshold {
                    Some(t) if t >= 1 => Some(t),
                    Some(_) => {
                        self.errs.at("threshold", "threshold must be at least 1");
                        None
                    }
                    None => {
                        self.missing("threshold");
                        None
                    }
                };
                Some(Logic::Consecutive {
                    when: when?,
                    reset: reset?,
                    threshold: threshold?,
                    within: within?,
                })
            }
            KindConfig::Sequence(s) => {
                self.needs_key();
                self.unused(&unused);
                let first = self.cond("first", s.first);
                let then = self.cond("then", s.then);
                let within = self.dur("within", s.within);
                Some(Logic::Sequence {
                    first: first?,
                    then: then?,
                    within: within?,
                })
            }
        }
    }

    /// A window's aggregates and `fire` (which reads them).
    fn window_parts(
        &mut self,
        aggregates: &BTreeMap<String, String>,
        fire: &Option<String>,
    ) -> (Option<Vec<Agg>>, Option<Expr>) {
        if aggregates.is_empty() {
            self.missing("aggregates");
        }
        if aggregates.len() > MAX_AGGS {
            self.errs.at(
                "aggregates",
                format!(
                    "at most {MAX_AGGS} aggregates per rule (has {})",
                    aggregates.len()
                ),
            );
        }
        let mut aggs = Vec::new();
        for (name, spec) in aggregates {
            match parse_agg(spec, self.scope) {
                Ok((a, names)) => {
                    self.reads.extend(names);
                    aggs.push(a)
                }
                Err(e) => {
                    let name: String = name.chars().take(60).collect();
                    self.errs
                        .at("aggregates", format!("aggregate `{name}`: {e}"))
                }
            }
        }
        let agg_names: Vec<String> = aggregates.keys().cloned().collect();
        let fire_scope = Scope {
            aggs: &agg_names,
            params: self.scope.params,
            tables: self.scope.tables,
        };
        let fire = match fire {
            None => {
                self.missing("fire");
                None
            }
            Some(s) => match compile_bool(s, &fire_scope) {
                Ok((e, names)) => {
                    self.reads.extend(names);
                    Some(e)
                }
                Err(e) => {
                    self.errs.at("fire", format!("fire: {e}"));
                    None
                }
            },
        };
        let complete = aggs.len() == aggregates.len() && aggs.len() <= MAX_AGGS;
        (complete.then_some(aggs), fire)
    }

    fn cond(&mut self, name: &'static str, src: &Option<String>) -> Option<Expr> {
        match src {
            None => {
                self.missing(name);
                None
            }
            Some(s) => match compile_bool(s, self.scope) {
                Ok((e, names)) => {
                    self.reads.extend(names);
                    Some(e)
                }
                Err(e) => {
                    self.errs.at(name, format!("{name}: {e}"));
                    None
                }
            },
        }
    }

    fn dur(&mut self, name: &'static str, src: &Option<String>) -> Option<Span> {
        match src.as_deref().map(span) {
            None => {
                self.missing(name);
                None
            }
            Some(Ok(Span::ZERO)) => {
                self.errs
                    .at(name, format!("{name} must be longer than zero"));
                None
            }
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                self.errs.at(name, format!("{name}: {e}"));
                None
            }
        }
    }

    /// A setting the kind needs is absent (unless the loader already reported it broken).
    fn missing(&mut self, name: &'static str) {
        let b = &self.cfg.broken;
        if !b.contains(name) && !b.contains("kind") {
            let kind = self.cfg.kind;
            self.errs
                .at("kind", format!("kind {kind:?} needs `{name}`"));
        }
    }

    fn needs_key(&mut self) {
        if self.cfg.key.is_empty() && !self.cfg.broken.contains("key") {
            let kind = self.cfg.kind;
            self.errs.at("kind", format!("kind {kind:?} needs a `key`"));
        }
    }

    /// The keys given that the kind does not read.
    fn unused(&mut self, names: &[&'static str]) {
        for &n in names {
            self.errs
                .at(n, format!("`{n}` is not used by kind {:?}", self.cfg.kind));
        }
    }
}

/// `count`, `sum(field)`, `distinct(field)` or `count_if(condition)`.
fn parse_agg(spec: &str, scope: &Scope) -> Result<(Agg, Vec<String>), String> {
    let spec = spec.trim();
    if spec == "count" {
        return Ok((Agg::Count, vec![]));
    }
    let (f, arg) = spec
        .strip_suffix(')')
        .and_then(|s| s.split_once('('))
        .ok_or_else(|| {
            format!(
                "{:?}: expected count, sum(field), distinct(field) or count_if(condition)",
                short(spec)
            )
        })?;
    match f.trim() {
        "count_if" => compile_bool(arg, scope)
            .map(|(e, n)| (Agg::CountIf(e), n))
            .map_err(|e| e.to_string()),
        "sum" | "distinct" => {
            let arg = arg.trim();
            let (field, ty) =
                Field::lookup(arg).ok_or_else(|| format!("unknown field `{}`", short(arg)))?;
            if f.trim() == "sum" {
                if ty != Ty::Num {
                    return Err(format!("sum({arg}) needs a numeric field"));
                }
                Ok((Agg::Sum(field), vec![arg.to_string()]))
            } else {
                Ok((Agg::Distinct(field), vec![arg.to_string()]))
            }
        }
        other => Err(format!("unknown aggregate `{}`", short(other))),
    }
}
