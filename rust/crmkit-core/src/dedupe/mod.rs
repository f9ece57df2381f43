//! Bulk duplicate detection: blocking, comparison, scoring, clustering.
//!
//! - [`data`]: the columnar, interned input ([`Dataset`]).
//! - [`file`]: CSV files straight to match keys, and back with cluster ids.
//! - [`block`]: blocking rules and candidate pairs.
//! - [`bound`]: early rejection of pairs that cannot reach the threshold.
//! - [`compare`]: field comparisons with graded levels.
//! - [`metric`]: allocation-free string metrics.
//! - [`nicknames`]: given-name nickname groups.
//! - [`score`]: Fellegi-Sunter weights, EM training, term frequencies.
//! - [`cluster`]: connected components with a chaining guard.
//! - [`matcher`]: [`Matcher`] (fit, predict, explain).
//! - [`index`]: [`Index`], incremental matching of new records.
//!
//! Correlated evidence: an email local part that agrees only because both
//! records spell their own names in it (`john.smith@a.com`,
//! `john.smith@b.org`) gets the `email/restates_name` level, whose weight is
//! fixed at 0, so names are not counted twice.

pub mod block;
pub mod bound;
pub mod cluster;
pub mod compare;
pub mod data;
pub mod file;
pub mod index;
pub mod jsonl;
pub mod matcher;
pub mod metric;
pub mod nicknames;
pub mod score;

pub use data::{Dataset, Field};
pub use index::Index;
pub use matcher::{Config, Explanation, Matcher, Prediction};
