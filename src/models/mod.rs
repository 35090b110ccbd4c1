//! Statistical models: learned baselines that catch what departs from an entity's own normal,
//! where rules catch known shapes. `switchguard train` fits them on history ([`train`]) and
//! writes one versioned file per model under `models/` (with a model card); the engine loads
//! them beside the rules and scores every event in its hot path ([`Scorer`]), and rules read
//! the scores like any other field (`density_pct >= 99.99`), so models and rules share one
//! decision path, one mode (enforce/shadow) and one alert format.
//!
//! - [`features`]: the one feature definition (streaming and polars batch);
//! - [`terminal_pin`], [`merchant_nopin`], [`density`], [`supervised`]: the four models;
//! - [`file`]: the model file format, loading and its errors;
//! - [`stats`]: tail probabilities and evaluation measures.

mod card;
pub mod density;
pub mod features;
pub mod file;
pub mod merchant_nopin;
mod score;
pub mod stats;
pub mod supervised;
pub mod terminal_pin;
pub mod train;

pub use card::render as model_card;
pub use file::{ModelError, ModelErrors, ModelFile, ModelKind, Models};
pub use merchant_nopin::MerchantNopinScore;
pub use score::{explain, ModelOut, Scorer};
pub use terminal_pin::TerminalPinScore;
