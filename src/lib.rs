//! Trellis keeps structures (ordered hierarchies of issues) and issue trackers
//! in agreement, declaratively. See `docs/ARCHITECTURE.md` for the map.

pub mod cli;
pub mod controller;
pub mod engine;
pub mod failpoint;
pub mod model;
pub mod plan;
mod serve;
pub mod spec;
pub mod store;
pub mod tracker;
pub mod trigger;
pub mod web;
mod yaml;
