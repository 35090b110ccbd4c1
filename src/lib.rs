//! switchguard: fraud and anomaly detection beside a card payment switch.
//!
//! Layers point one way, each using only those before it:
//!
//! ```text
//! pan, time, keyed           leaves: PAN scan/mask/tokenise; event time and spans; key
//!                            hash, CowMap, stages
//! event, control             the inputs: a transaction, a control record (Input = either)
//! source ─▶ decode           files and bytes → Input, or a reject with its reason
//! state, feature             keyed books (dedup, pre-auth, QR, terminal) → the features,
//!                            each declared once (feature::table)
//! rules, models              rule language (compiled at load) and statistical models
//! decision                   alerts, commands, lock records, control records, evidence
//! engine                     the pure core: ordering (one watermark component), the
//!                            engine, the replay pipeline, a stage shard
//! sink                       JSONL files, reports                        ─┐ the I/O edges
//! service, console, app      Kafka service; risk console; the commands  ─┘
//! ```
//!
//! `decode`, `state`, `feature`, `rules`, `models`, `decision` and `engine` do no I/O, start
//! no thread and never read a clock: time is event time. The public API a program embedding
//! switchguard uses: [`decode::Decoder`] (bytes → [`control::Input`]), [`engine::Engine`]
//! and [`engine::Pipeline`] (inputs → [`decision::Decisions`]), [`rules::RulePack`] and
//! [`models::Models`] (loaded from their directories), [`service::run`] (the Kafka service)
//! and [`app::main`] (the command line). Other `pub` items are for the tests and benches.

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
pub mod time;
