//! The engine's errors, for callers that match on them (the service decides whether a restore
//! problem is fatal; `rules check --scale-out` lists refused rules).

use thiserror::Error;

/// A snapshot or checkpoint that cannot be resumed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RestoreError {
    #[error("snapshot version {found} is not supported (expected {expected})")]
    Version { found: u32, expected: u32 },
    #[error(
        "the checkpoint has {was} sources, the topics now give {now}: partition counts cannot \
         change under a running group (start a new group)"
    )]
    Sources { was: usize, now: usize },
}

/// A record a stage shard cannot take.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ShardError {
    #[error("{what} from unknown source {src}")]
    UnknownSource { what: &'static str, src: u32 },
}

/// Why scale-out cannot run a rule exactly (README "Scaling out").
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Unshardable {
    #[error(
        "its state is keyed by `{0}` first; scale-out shards only by card, terminal, merchant, \
         auth_ref, qr_ref or id (put one of those first in `key`)"
    )]
    Key(&'static str),
    #[error("a stateful rule without `key` cannot be sharded")]
    NoKey,
    #[error(
        "it locks cards, but its state is keyed by {0}; card locks live with the card (key it \
         by card first)"
    )]
    CardLock(&'static str),
    #[error(
        "it locks terminals, but its state is keyed by {0}; terminal locks live with the \
         terminal (key it by terminal first)"
    )]
    TerminalLock(&'static str),
    #[error(
        "it runs at the {home} stage but reads `{field}`, which the later {later} stage computes"
    )]
    ReadsLater {
        home: &'static str,
        field: &'static str,
        later: &'static str,
    },
}
