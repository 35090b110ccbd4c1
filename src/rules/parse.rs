//! Rule file text → rule and table settings, key by key, every structural problem collected.
//!
//! The file is parsed once as TOML with the position of every key (only a TOML syntax error
//! stops a file: there is nothing sound to read after it). Then each `[[rule]]` and each
//! `[tables.NAME]` is read on its own, and each of its keys on its own: a wrong type, an
//! unknown key, a bad enum value or a missing key is one problem with the file, the rule id
//! (or `#N` for a rule without a usable id) and the key's line, and the rest of the rule is
//! still read and compiled. Deserialising a whole rule with serde stopped at its first problem,
//! often reported at "line 1, column 1".

use super::config::{
    ExampleConfig, KindKeys, KindName, Mode, RuleConfig, Severity, TableConfig, FILE_KEYS,
    REQUIRED_RULE_KEYS, RULE_KEYS, TABLE_KEYS,
};
use super::{clip, short, Problem};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use toml::de::{DeString, DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

/// One `[[rule]]` as read: its settings (placeholders where `cfg.broken` says so) and where
/// each key is.
#[derive(Debug)]
pub struct ParsedRule {
    pub cfg: RuleConfig,
    /// How problems name the rule: its id, or `#N` (its place in the file) without one.
    pub label: String,
    /// The line of `[[rule]]` (problems about the rule as a whole).
    pub line: usize,
    /// The line of each key.
    pub lines: BTreeMap<String, usize>,
}

impl ParsedRule {
    /// The line a problem about `key` points at (the rule's own line for `""`).
    pub fn line_of(&self, key: &str) -> usize {
        self.lines.get(key).copied().unwrap_or(self.line)
    }
}

/// One `[tables.NAME]` as read (`cfg` is `None` when it is unusable).
#[derive(Debug)]
pub struct ParsedTable {
    pub name: String,
    pub line: usize,
    pub cfg: Option<TableConfig>,
}

/// A whole file as read.
#[derive(Debug, Default)]
pub struct ParsedFile {
    pub rules: Vec<ParsedRule>,
    pub tables: Vec<ParsedTable>,
    pub problems: Vec<Problem>,
}

/// Line numbers (1-based) of byte offsets.
struct Lines(Vec<usize>);

impl Lines {
    fn of(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1))
            .collect();
        Self(starts)
    }
    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|s| *s <= offset)
    }
    fn column(&self, offset: usize) -> usize {
        offset - self.0[self.line(offset) - 1] + 1
    }
}

/// Why a value does not deserialise: serde's message, clipped (no position: the caller has
/// the key's line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
struct BadValue(String);

/// A value deserialised into `T`.
fn take<T: DeserializeOwned>(v: &Spanned<DeValue>) -> Result<T, BadValue> {
    T::deserialize(ValueDeserializer::from(v.clone())).map_err(|e| {
        // serde quotes the offending value: keep a hostile one from flooding the output.
        BadValue(clip(e.message().trim(), 300))
    })
}

/// Read `file` (named `name` in problems).
pub fn parse_file(name: &str, text: &str) -> ParsedFile {
    let lines = Lines::of(text);
    let mut out = ParsedFile::default();
    let doc = match document(name, text, &lines) {
        Ok(d) => d,
        Err(p) => {
            out.problems.push(p);
            return out;
        }
    };
    for (k, v) in doc.get_ref().iter() {
        top_level(name, k, v, &lines, &mut out);
    }
    out
}

/// The file as TOML with the position of every key, or the syntax problem that stops it.
fn document<'t>(name: &str, text: &'t str, lines: &Lines) -> Result<Spanned<DeTable<'t>>, Problem> {
    let syntax = |at: usize, what: String| {
        let (line, col) = (lines.line(at), lines.column(at));
        file_problem(
            name,
            line,
            format!("TOML syntax error at line {line}, column {col}: {what}"),
        )
    };
    // Checked before the parser, which recurses once per bracket.
    if let Some(at) = super::toml_guard::too_deep(text) {
        let what = format!(
            "brackets nested more than {} deep",
            super::toml_guard::MAX_NESTING
        );
        return Err(syntax(at, what));
    }
    DeTable::parse(text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        syntax(at, clip(e.message().trim(), 300))
    })
}

/// A problem with the file as a whole (no rule), at `line`.
fn file_problem(name: &str, line: usize, message: String) -> Problem {
    Problem {
        file: name.to_string(),
        rule: None,
        line: Some(line),
        message,
    }
}

/// Read one top-level key: the `[[rule]]` array, the `[tables.NAME]`, or a problem.
fn top_level(
    name: &str,
    k: &Spanned<DeString>,
    v: &Spanned<DeValue>,
    lines: &Lines,
    out: &mut ParsedFile,
) {
    let line = lines.line(k.span().start);
    let problem = |line: usize, message: String| file_problem(name, line, message);
    match (k.get_ref().as_ref(), v.get_ref()) {
        ("rule", DeValue::Array(items)) => rules(name, items, lines, out),
        ("rule", _) => out.problems.push(problem(
            line,
            "`rule` must be an array of tables: write [[rule]]".into(),
        )),
        ("tables", DeValue::Table(t)) => {
            for (tk, tv) in t.iter() {
                let at = lines.line(tk.span().start);
                out.tables
                    .push(table(tk.get_ref(), at, tv, lines, &mut |l, m| {
                        out.problems.push(problem(l, m))
                    }));
            }
        }
        ("tables", _) => out.problems.push(problem(
            line,
            "`tables` must be a table: write [tables.NAME]".into(),
        )),
        (other, _) => out.problems.push(problem(
            line,
            format!(
                "unknown top-level key `{}` (a rule file holds {})",
                short(other),
                FILE_KEYS.join(" and ")
            ),
        )),
    }
}

/// Each `[[rule]]` of the file, numbered from 1 for problems about rules without an id.
fn rules(name: &str, items: &[Spanned<DeValue>], lines: &Lines, out: &mut ParsedFile) {
    for (i, item) in items.iter().enumerate() {
        let at = lines.line(item.span().start);
        match item.get_ref() {
            DeValue::Table(t) => {
                let r = Rule::read(name, i + 1, at, t, lines, &mut out.problems);
                out.rules.push(r);
            }
            _ => out.problems.push(Problem {
                rule: Some(format!("#{}", i + 1)),
                ..file_problem(name, at, "a rule must be a table: write [[rule]]".into())
            }),
        }
    }
}

/// Reading one `[[rule]]`.
struct Rule<'p> {
    file: &'p str,
    label: String,
    problems: &'p mut Vec<Problem>,
    broken: BTreeSet<String>,
}

impl Rule<'_> {
    fn read(
        file: &str,
        n: usize,
        line: usize,
        t: &DeTable,
        lines: &Lines,
        problems: &mut Vec<Problem>,
    ) -> ParsedRule {
        let id_value = t
            .iter()
            .find(|(k, _)| k.get_ref() == "id")
            .and_then(|(_, v)| v.get_ref().as_str().map(str::to_string));
        let label = match &id_value {
            Some(id) if !id.is_empty() && id.len() <= super::compile::MAX_ID_LEN => id.clone(),
            _ => format!("#{n}"),
        };
        let mut r = Rule {
            file,
            label,
            problems,
            broken: BTreeSet::new(),
        };
        let mut cfg = RuleConfig {
            id: id_value.unwrap_or_default(),
            description: String::new(),
            severity: Severity::Low,
            mode: Mode::Off,
            kind: KindName::Match,
            key: Vec::new(),
            entity: None,
            by_kind: KindKeys::default(),
            params: BTreeMap::new(),
            reason: String::new(),
            action: None,
            example: Vec::new(),
            broken: BTreeSet::new(),
        };
        let mut key_lines = BTreeMap::new();
        for (k, v) in t.iter() {
            let key: &str = k.get_ref();
            let at = lines.line(k.span().start);
            key_lines.insert(key.to_string(), at);
            r.key(&mut cfg, key, v, at, lines);
        }
        for k in REQUIRED_RULE_KEYS {
            if !key_lines.contains_key(k) {
                r.problem(line, format!("missing `{k}`"));
                r.broken.insert(k.to_string());
            }
        }
        cfg.broken = std::mem::take(&mut r.broken);
        ParsedRule {
            cfg,
            label: r.label,
            line,
            lines: key_lines,
        }
    }

    fn problem(&mut self, line: usize, message: String) {
        self.problems.push(Problem {
            file: self.file.to_string(),
            rule: Some(self.label.clone()),
            line: Some(line),
            message,
        });
    }

    /// Deserialise `v` into `T`, or report the problem and mark `key` broken.
    fn get<T: DeserializeOwned>(
        &mut self,
        key: &str,
        v: &Spanned<DeValue>,
        at: usize,
    ) -> Option<T> {
        match take(v) {
            Ok(x) => Some(x),
            Err(e) => {
                self.problem(at, format!("`{key}`: {e}"));
                self.broken.insert(key.to_string());
                None
            }
        }
    }

    /// Read one key into `cfg`.
    fn key(
        &mut self,
        cfg: &mut RuleConfig,
        key: &str,
        v: &Spanned<DeValue>,
        at: usize,
        lines: &Lines,
    ) {
        macro_rules! set {
            ($($field:ident).+) => {
                if let Some(x) = self.get(key, v, at) {
                    cfg.$($field).+ = x;
                }
            };
        }
        let choices = match key {
            "severity" => Some("low, medium, high, critical"),
            "mode" => Some("enforce, shadow, off"),
            "kind" => Some("match, window, consecutive, sequence"),
            _ => None,
        };
        if let (Some(c), false) = (choices, v.get_ref().is_str()) {
            let found = v.get_ref().type_str();
            self.problem(at, format!("`{key}`: expected one of {c}, found {found}"));
            self.broken.insert(key.to_string());
            return;
        }
        match key {
            "id" => set!(id),
            "description" => set!(description),
            "severity" => set!(severity),
            "mode" => set!(mode),
            "kind" => set!(kind),
            "key" => set!(key),
            "entity" => set!(entity),
            "when" => set!(by_kind.when),
            "reset" => set!(by_kind.reset),
            "first" => set!(by_kind.first),
            "then" => set!(by_kind.then),
            "threshold" => set!(by_kind.threshold),
            "within" => set!(by_kind.within),
            "window" => set!(by_kind.window),
            "aggregates" => set!(by_kind.aggregates),
            "fire" => set!(by_kind.fire),
            "params" => set!(params),
            "reason" => set!(reason),
            "action" => set!(action),
            "example" => cfg.example = self.examples(v, at, lines),
            other => self.problem(
                at,
                format!(
                    "unknown key `{}` (a rule has: {})",
                    short(other),
                    RULE_KEYS.join(", ")
                ),
            ),
        }
    }

    /// Each `[[rule.example]]` on its own, at its own line.
    fn examples(&mut self, v: &Spanned<DeValue>, at: usize, lines: &Lines) -> Vec<ExampleConfig> {
        let DeValue::Array(items) = v.get_ref() else {
            self.problem(
                at,
                "`example` must be an array of tables: write [[rule.example]]".into(),
            );
            self.broken.insert("example".into());
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match take::<ExampleConfig>(item) {
                Ok(x) => out.push(x),
                Err(e) => {
                    let line = lines.line(item.span().start).max(at);
                    self.problem(line, format!("example #{}: {e}", i + 1));
                    self.broken.insert("example".into());
                }
            }
        }
        out
    }
}

/// Read one `[tables.NAME]`; problems go to `problem(line, message)`.
fn table(
    name: &str,
    line: usize,
    v: &Spanned<DeValue>,
    lines: &Lines,
    problem: &mut dyn FnMut(usize, String),
) -> ParsedTable {
    let name = name.to_string();
    let mut bad = |l: usize, m: String| problem(l, format!("table {}: {m}", short(&name)));
    let mut out = ParsedTable {
        name: name.clone(),
        line,
        cfg: None,
    };
    let DeValue::Table(t) = v.get_ref() else {
        bad(line, "must be a table: write [tables.NAME]".into());
        return out;
    };
    let (mut key, mut values, mut default, mut ok) = (None, None, None, true);
    for (k, v) in t.iter() {
        let at = lines.line(k.span().start);
        let field: &str = k.get_ref();
        let r = match field {
            "key" => take::<String>(v).map(|x| key = Some(x)),
            "values" => take::<BTreeMap<String, toml::Value>>(v).map(|x| values = Some(x)),
            "default" => take::<toml::Value>(v).map(|x| default = Some(x)),
            other => {
                ok = false;
                let known = TABLE_KEYS.join(", ");
                bad(
                    at,
                    format!("unknown key `{}` (a table has: {known})", short(other)),
                );
                continue;
            }
        };
        if let Err(e) = r {
            ok = false;
            bad(at, format!("`{field}`: {e}"));
        }
    }
    for (k, present) in [
        ("key", t.iter().any(|(k, _)| k.get_ref() == "key")),
        ("values", t.iter().any(|(k, _)| k.get_ref() == "values")),
    ] {
        if !present {
            ok = false;
            bad(line, format!("missing `{k}`"));
        }
    }
    if let (true, Some(key), Some(values)) = (ok, key, values) {
        out.cfg = Some(TableConfig {
            key,
            values,
            default,
        });
    }
    out
}
