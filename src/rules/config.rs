//! The rule file format (TOML), as serde types. These are the user-facing documentation of the
//! format: every field here is described in README.md, and unknown keys are refused.
//!
//! TOML rather than YAML: response codes and MCCs are digit strings (`"05"`, `"0742"`) that YAML
//! silently turns into numbers (and `NO` into false); TOML has no implicit typing, has comments,
//! reports errors with line and column, and is what Rust tooling already uses.

use serde::Deserialize;
use std::collections::BTreeMap;

/// One file under `rules/`: any number of rules and lookup tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub rule: Vec<RuleConfig>,
    #[serde(default)]
    pub tables: BTreeMap<String, TableConfig>,
}

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

/// One rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub id: String,
    pub description: String,
    pub severity: Severity,
    pub mode: Mode,
    pub kind: KindName,
    /// Fields whose values together form the state key, e.g. `["card", "merchant"]`.
    #[serde(default)]
    pub key: Vec<String>,
    /// The alert's entity (`card`, `terminal`, `merchant`); defaults from `key` / `action`.
    pub entity: Option<String>,
    pub when: Option<String>,
    pub reset: Option<String>,
    pub first: Option<String>,
    pub then: Option<String>,
    pub threshold: Option<u32>,
    pub within: Option<String>,
    pub window: Option<String>,
    /// Window aggregates by name: `count`, `sum(field)`, `distinct(field)`, `count_if(cond)`.
    #[serde(default)]
    pub aggregates: BTreeMap<String, String>,
    pub fire: Option<String>,
    /// Named constants the expressions use (thresholds live here).
    #[serde(default)]
    pub params: BTreeMap<String, toml::Value>,
    /// One human sentence; `{name}` is replaced by a feature, parameter or event field.
    pub reason: String,
    pub action: Option<ActionConfig>,
    #[serde(default)]
    pub example: Vec<ExampleConfig>,
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
