//! The rule file format (TOML), as serde types. These are the user-facing documentation of the
//! format: every field here is described in README.md, and unknown keys are refused.
//!
//! TOML rather than YAML: response codes and MCCs are digit strings (`"05"`, `"0742"`) that YAML
//! silently turns into numbers (and `NO` into false); TOML has no implicit typing, has comments,
//! reports errors with line and column, and is what Rust tooling already uses.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// The keys a rule file may have at its top level.
pub const FILE_KEYS: [&str; 2] = ["rule", "tables"];

/// The keys a `[[rule]]` may have: the fields of [`RuleConfig`].
pub const RULE_KEYS: [&str; 20] = [
    "id",
    "description",
    "severity",
    "mode",
    "kind",
    "key",
    "entity",
    "when",
    "reset",
    "first",
    "then",
    "threshold",
    "within",
    "window",
    "aggregates",
    "fire",
    "params",
    "reason",
    "action",
    "example",
];

/// The keys a `[tables.NAME]` may have: the fields of [`TableConfig`].
pub const TABLE_KEYS: [&str; 3] = ["key", "values", "default"];

/// The keys a rule must have.
pub const REQUIRED_RULE_KEYS: [&str; 6] =
    ["id", "description", "severity", "mode", "kind", "reason"];

/// A lookup table, e.g. the no-CVM limit per currency: `amount > nocvm_limit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// The event field whose value selects the entry (e.g. `currency`).
    pub key: String,
    pub values: BTreeMap<String, toml::Value>,
    /// Value when the key is missing or not listed (default: null, so comparisons are false).
    pub default: Option<toml::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Alerts and lockout commands.
    Enforce,
    /// Alerts marked `shadow`, no commands: for trying a rule on live traffic.
    Shadow,
    /// Not evaluated.
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Shadow => "shadow",
            Self::Off => "off",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KindName {
    /// Fires on a single event matching `when`.
    Match,
    /// Sliding window per key: `aggregates` over events matching `when`, fires when `fire`.
    Window,
    /// `threshold` events matching `when` in a row per key within `within`, `reset` clears.
    Consecutive,
    /// An event matching `first`, then one matching `then`, same key, within `within`.
    Sequence,
}

/// One rule. Read key by key by [`super::parse`], so that every problem of every key is
/// reported at once; each key's value is deserialised into the type given here.
#[derive(Debug)]
pub struct RuleConfig {
    pub id: String,
    pub description: String,
    pub severity: Severity,
    pub mode: Mode,
    pub kind: KindName,
    /// Fields whose values together form the state key, e.g. `["card", "merchant"]`.
    pub key: Vec<String>,
    /// The alert's entity (`card`, `terminal`, `merchant`); defaults from `key` / `action`.
    pub entity: Option<String>,
    /// The keys whose use depends on `kind`, as given.
    pub by_kind: KindKeys,
    /// Named constants the expressions use (thresholds live here).
    pub params: BTreeMap<String, toml::Value>,
    /// One human sentence; `{name}` is replaced by a feature, parameter or event field.
    pub reason: String,
    pub action: Option<ActionConfig>,
    pub example: Vec<ExampleConfig>,
    /// Keys the loader already reported as missing or malformed (their value here is a
    /// placeholder): not reported again by the compiler, and nothing that needs them is run.
    pub broken: BTreeSet<String>,
}

/// The keys of a rule whose use depends on its `kind`, as given (each kind reads some and
/// refuses the others: [`KindKeys::for_kind`]).
#[derive(Debug, Default)]
pub struct KindKeys {
    pub when: Option<String>,
    pub reset: Option<String>,
    pub first: Option<String>,
    pub then: Option<String>,
    pub threshold: Option<u32>,
    pub within: Option<String>,
    pub window: Option<String>,
    /// Window aggregates by name: `count`, `sum(field)`, `distinct(field)`, `count_if(cond)`.
    pub aggregates: BTreeMap<String, String>,
    pub fire: Option<String>,
}

/// A `match` rule's own settings.
#[derive(Debug)]
pub struct MatchConfig<'a> {
    pub when: &'a Option<String>,
}

/// A `window` rule's own settings.
#[derive(Debug)]
pub struct WindowConfig<'a> {
    pub when: &'a Option<String>,
    pub window: &'a Option<String>,
    pub aggregates: &'a BTreeMap<String, String>,
    pub fire: &'a Option<String>,
}

/// A `consecutive` rule's own settings.
#[derive(Debug)]
pub struct ConsecutiveConfig<'a> {
    pub when: &'a Option<String>,
    pub reset: &'a Option<String>,
    pub threshold: &'a Option<u32>,
    pub within: &'a Option<String>,
}

/// A `sequence` rule's own settings.
#[derive(Debug)]
pub struct SequenceConfig<'a> {
    pub first: &'a Option<String>,
    pub then: &'a Option<String>,
    pub within: &'a Option<String>,
}

/// The settings of a rule's kind, typed: one struct per kind, holding only the keys that
/// kind reads.
#[derive(Debug)]
pub enum KindConfig<'a> {
    Match(MatchConfig<'a>),
    Window(WindowConfig<'a>),
    Consecutive(ConsecutiveConfig<'a>),
    Sequence(SequenceConfig<'a>),
}

/// Whether a key was given.
trait Given {
    fn given(&self) -> bool;
}

impl<T> Given for Option<T> {
    fn given(&self) -> bool {
        self.is_some()
    }
}

impl<K, V> Given for BTreeMap<K, V> {
    fn given(&self) -> bool {
        !self.is_empty()
    }
}

/// The names of the given keys among `$k`, in that order.
macro_rules! given {
    ($($k:ident),*) => {{
        let mut v: Vec<&'static str> = Vec::new();
        $(if $k.given() { v.push(stringify!($k)); })*
        v
    }};
}

/// What [`KindKeys::for_kind`] gives: a kind's typed settings and the given keys it does not
/// read.
type ForKind<'a> = (KindConfig<'a>, Vec<&'static str>);

impl KindKeys {
    /// The settings `kind` reads, typed, and the keys given that it does not read (each a
    /// problem with the rule). Every kind's helper takes every key, without `..`: a new key
    /// does not compile until each kind reads it or refuses it.
    pub fn for_kind(&self, kind: KindName) -> ForKind<'_> {
        match kind {
            KindName::Match => self.for_match(),
            KindName::Window => self.for_window(),
            KindName::Consecutive => self.for_consecutive(),
            KindName::Sequence => self.for_sequence(),
        }
    }

    fn for_match(&self) -> ForKind<'_> {
        let KindKeys {
            when,
            reset,
            first,
            then,
            threshold,
            within,
            window,
            aggregates,
            fire,
        } = self;
        (
            KindConfig::Match(MatchConfig { when }),
            given!(reset, first, then, threshold, within, window, aggregates, fire),
        )
    }

    fn for_window(&self) -> ForKind<'_> {
        let KindKeys {
            when,
            reset,
            first,
            then,
            threshold,
            within,
            window,
            aggregates,
            fire,
        } = self;
        (
            KindConfig::Window(WindowConfig {
                when,
                window,
                aggregates,
                fire,
            }),
            given!(reset, first, then, threshold, within),
        )
    }

    fn for_consecutive(&self) -> ForKind<'_> {
        let KindKeys {
            when,
            reset,
            first,
            then,
            threshold,
            within,
            window,
            aggregates,
            fire,
        } = self;
        (
            KindConfig::Consecutive(ConsecutiveConfig {
                when,
                reset,
                threshold,
                within,
            }),
            given!(first, then, window, aggregates, fire),
        )
    }

    fn for_sequence(&self) -> ForKind<'_> {
        let KindKeys {
            when,
            reset,
            first,
            then,
            threshold,
            within,
            window,
            aggregates,
            fire,
        } = self;
        (
            KindConfig::Sequence(SequenceConfig {
                first,
                then,
                within,
            }),
            given!(when, reset, threshold, window, aggregates, fire),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    LockCard,
    LockTerminal,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LockCard => "lock_card",
            Self::LockTerminal => "lock_terminal",
        }
    }
}

/// What the switch is told to do when the rule fires in `enforce` mode.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    #[serde(rename = "type")]
    pub kind: ActionKind,
    /// How long the lock lasts (`24h`, `30m`).
    pub ttl: String,
    /// Code the switch records with the lock.
    pub reason_code: String,
}

/// An example case: events in, the ids of the events on which this rule fires out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleConfig {
    pub name: String,
    pub events: Vec<toml::Table>,
    pub expect: Vec<String>,
}
