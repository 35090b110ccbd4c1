//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use switchguard::decision::Decisions;
use switchguard::decode::Decoder;
use switchguard::engine::{Engine, EngineConfig, Pipeline};
use switchguard::event::Event;
use switchguard::rules::RulePack;
use switchguard::sim::{self, SimConfig};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn default_pack() -> Arc<RulePack> {
    Arc::new(RulePack::load_dir(&root().join("rules")).expect("default rules load"))
}

/// Simulated traffic, decoded.
pub fn sim_events(cfg: &SimConfig) -> Vec<Event> {
    let d = Decoder::default();
    let mut out = Vec::new();
    sim::generate(cfg, &mut |e| {
        let json = serde_json::to_vec(&e).unwrap();
        out.push(d.decode_json(&json).unwrap());
    });
    out
}

/// Run events through a fresh pipeline in the given order; return all decisions as JSON lines.
pub fn run_events(pack: &Arc<RulePack>, events: impl IntoIterator<Item = Event>) -> Vec<String> {
    let mut p = Pipeline::new(Engine::new(pack.clone(), EngineConfig::default()));
    let mut d = Decisions::default();
    for e in events {
        p.push(e, &mut d);
    }
    p.flush(&mut d);
    lines(&d)
}

pub fn lines(d: &Decisions) -> Vec<String> {
    let mut v: Vec<String> = d
        .alerts
        .iter()
        .map(|a| serde_json::to_string(a).unwrap())
        .collect();
    v.extend(d.commands.iter().map(|c| serde_json::to_string(c).unwrap()));
    v
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
