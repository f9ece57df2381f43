//! Normalization of contact fields, one value at a time and in bulk over columns.

pub mod email;

pub use email::{normalize_email, EmailOptions};

use rayon::prelude::*;

/// Apply `f` to every value of a column in parallel, keeping order.
pub fn map_column<T, F>(values: &[Option<&str>], f: F) -> Vec<Option<T>>
where
    T: Send,
    F: Fn(&str) -> Option<T> + Sync,
{
    values.par_iter().map(|v| v.and_then(&f)).collect()
}
