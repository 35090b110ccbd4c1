//! switchguard: fraud and anomaly detection beside a card payment switch.
//!
//! The folders follow the data flow:
//!
//! ```text
//! source ──▶ decode ──▶ state (books, features) ──▶ rules ──▶ decision ──▶ sink
//!  files      JSON/rows    dedup, pre-auth,          window,      alerts,       JSONL,
//!  (kafka)    → Event,     QR, terminal              consecutive, lock          report
//!             PAN → token  sessions                  sequence...  commands
//! ```
//!
//! - [`event`]: the validated event type;
//! - [`decode`]: bytes/rows → [`event::Event`] or a reject with its reason; PAN tokenisation;
//! - [`state`]: keyed books shared by rules, evicted by event time;
//! - [`rules`]: the rule language (TOML + expressions), compiled and validated at load;
//! - [`models`]: statistical models (trained by `train`, scored per event beside the rules);
//! - [`decision`]: alerts, lockout commands, deterministic ids, the lock table;
//! - [`engine`]: the pure core tying the above together, plus event-time ordering;
//! - [`source`] / [`sink`]: file input and output (the I/O edges);
//! - [`sim`]: the traffic simulator;
//! - [`service`]: the streaming service (Kafka source/sink, checkpoints, metrics);
//! - [`console`]: the risk team's web console (its own tokio runtime and database; talks to
//!   the core only through topics and contracts);
//! - [`app`]: the commands (`run`, `replay`, `simulate`, `rules`, `demo`, `console`).
//!
//! `decode`, `state`, `rules`, `decision` and `engine` do no I/O and never read a clock.

pub mod app;
pub mod console;
pub mod control;
pub mod decision;
pub mod decode;
pub mod engine;
pub mod event;
pub mod feature;
pub mod keyed;
pub mod models;
pub mod pan;
pub mod rules;
pub mod service;
pub mod sim;
pub mod sink;
pub mod source;
pub mod state;
pub mod telemetry;
