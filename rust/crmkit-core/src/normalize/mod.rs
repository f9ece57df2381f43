//! Normalization of contact fields, one value at a time and in bulk over columns.
//!
//! Each field has a one-value function and a column function that maps a
//! whole column in parallel (rayon), keeping order; [`normalize_contact_columns`]
//! does all known contact fields of an import batch in one call.

pub mod contact;
pub mod country;
pub mod email;
pub mod name;
pub mod phone;
pub mod postcode;

pub use contact::{normalize_contact_columns, ContactOptions, Issue, NormalizedColumns};
pub use country::normalize_country;
pub use email::{normalize_email, EmailOptions};
pub use name::{clean_name, name_key};
pub use phone::{normalize_phone, PhoneRegion};
pub use postcode::{normalize_postcode, postcode_key};

use rayon::prelude::*;

use crate::CoreResult;

/// Apply `f` to every value of a column in parallel, keeping order.
pub fn map_column<T, F>(values: &[Option<&str>], f: F) -> Vec<Option<T>>
where
    T: Send,
    F: Fn(&str) -> Option<T> + Sync,
{
    values.par_iter().map(|v| v.and_then(&f)).collect()
}

/// Normalize a column of phone numbers to E.164 with `default_region` (ISO
/// alpha-2) for numbers without a country code. Errors only on an unknown region.
pub fn normalize_phones(
    values: &[Option<&str>],
    default_region: &str,
) -> CoreResult<Vec<Option<String>>> {
    let region = PhoneRegion::new(default_region)?;
    Ok(map_column(values, |s| normalize_phone(s, &region)))
}

/// Display-clean a column of names (see [`clean_name`]).
pub fn clean_names(values: &[Option<&str>]) -> Vec<Option<String>> {
    map_column(values, clean_name)
}

/// Match keys for a column of names (see [`name_key`]).
pub fn name_keys(values: &[Option<&str>]) -> Vec<Option<String>> {
    map_column(values, name_key)
}

/// ISO alpha-2 codes for a column of country values (see [`normalize_country`]).
pub fn normalize_countries(values: &[Option<&str>]) -> Vec<Option<&'static str>> {
    map_column(values, normalize_country)
}

/// Clean a column of postal codes, each with its row's country (ISO alpha-2)
/// when known (see [`normalize_postcode`]).
pub fn normalize_postcodes(
    values: &[Option<&str>],
    countries: Option<&[Option<&str>]>,
) -> Vec<Option<String>> {
    values
        .par_iter()
        .enumerate()
        .map(|(i, v)| {
            let c = countries.and_then(|c| c.get(i).copied().flatten());
            v.and_then(|s| normalize_postcode(s, c))
        })
        .collect()
}
