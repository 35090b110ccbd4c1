//! Statistical models: learned baselines that catch what departs from an entity's own normal,
//! where rules catch known shapes. `switchguard train` fits them on history ([`train`]) and
//! writes them as one model set under `models/` (a versioned file and a model card per model,
//! a manifest naming the set); the engine loads the set beside the rules and scores every
//! event in its hot path ([`Scorer`]), and rules read the scores like any other field
//! (`card_outlier_score >= 6`), so models and rules share one decision path, one mode
//! (enforce/shadow) and one alert format.
//!
//! - [`features`] (streaming) and [`batch`] (training): the one feature definition; [`pin`]:
//!   the terminal PIN state;
//! - [`terminal_pin`], [`merchant_nopin`], [`card_outlier`], [`density`], [`supervised`]: the
//!   five models;
//! - [`file`], [`manifest`]: the model file format, the model set, loading and its errors;
//! - [`drift`]: training summaries and the live population stability index;
//! - [`holdout`], [`evaluate`]: the holdout figures and the replay evaluation across worlds;
//! - [`labels`]: dispositions from the risk console;
//! - [`stats`]: tail probabilities, priors and evaluation measures.

pub mod batch;
mod card;
pub mod card_outlier;
pub mod density;
pub mod drift;
pub mod evaluate;
pub mod features;
pub mod file;
pub mod holdout;
pub mod labels;
pub mod manifest;
pub mod merchant_nopin;
pub mod params;
pub mod pin;
pub mod robust;
mod score;
pub mod stats;
pub mod supervised;
pub mod terminal_pin;
pub mod train;

pub use card::{render as model_card, CardEval};
pub use card_outlier::CardOutlierScore;
pub use file::{Empty, ModelError, ModelErrors, ModelFile, ModelKind, Models};
pub use merchant_nopin::MerchantNopinScore;
pub use score::{explain, ModelOut, Scorer};
pub use terminal_pin::TerminalPinScore;
