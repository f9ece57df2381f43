//! crmkit-core: the pure-Rust engines behind crmkit.
//!
//! This crate has no Python dependency and is tested by `cargo test` alone.
//! The binding crate (`crmkit-py`) is a thin layer over it.
//!
//! - [`normalize`]: bulk normalization of emails, phones and names.
//! - [`convert`]: typed attribute values from text, and their JSON encoding.
//! - [`dedupe`]: blocking, comparison, Fellegi-Sunter scoring and clustering.
//! - [`segments`]: the segment rule language, its compiler and evaluator.
//! - [`keymap`]: upsert keys to contact ids for bulk loads.

pub mod convert;
pub mod csvread;
#[allow(clippy::type_complexity, clippy::needless_range_loop)]
pub mod dedupe;
pub mod error;
pub mod keymap;
pub mod normalize;
pub mod rfm;
pub mod segments;

pub use error::{CoreError, CoreResult};
