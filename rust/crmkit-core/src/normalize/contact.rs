//! One-call normalization of the contact columns an import brings in.

use std::collections::HashMap;

use rayon::prelude::*;

use super::{
    clean_name, normalize_country, normalize_email, normalize_phone, normalize_postcode,
    EmailOptions, PhoneRegion,
};
use crate::{CoreError, CoreResult};

/// The fields [`normalize_contact_columns`] knows, in the order issues are
/// reported within a row.
pub const CONTACT_FIELDS: [&str; 6] = [
    "email",
    "phone",
    "first_name",
    "last_name",
    "country",
    "postcode",
];

/// Options for [`normalize_contact_columns`].
#[derive(Debug, Clone)]
pub struct ContactOptions {
    /// Region (ISO alpha-2) for phone numbers written without a country code
    /// when the row has no recognised country.
    pub default_region: String,
    /// Email folding options.
    pub email: EmailOptions,
}

impl Default for ContactOptions {
    fn default() -> Self {
        Self {
            default_region: "US".into(),
            email: EmailOptions::default(),
        }
    }
}

/// A value that could not be normalized. `reason` never contains the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// 0-based row index in the input columns.
    pub row: usize,
    /// The field name ("email", "phone", ...).
    pub field: &'static str,
    /// Why the value was dropped, e.g. "not an email address".
    pub reason: &'static str,
}

/// The normalized known columns and the issues found.
#[derive(Debug, Clone, Default)]
pub struct NormalizedColumns {
    /// `(field, values)` for each known field present in the input, in input order.
    pub columns: Vec<(&'static str, Vec<Option<String>>)>,
    /// Issues ordered by row, then by field in [`CONTACT_FIELDS`] order.
    pub issues: Vec<Issue>,
}

fn reason_for(field: &str) -> &'static str {
    match field {
        "email" => "not an email address",
        "phone" => "not a valid phone number",
        "country" => "unknown country",
        "postcode" => "not a postal code",
        _ => "empty after cleaning",
    }
}

/// Normalize the known contact fields among `columns` (`email`, `phone`,
/// `first_name`, `last_name`, `country`, `postcode`); other names are
/// ignored (the caller passes them through).
///
/// - `country` becomes an ISO alpha-2 code; unknown names give `None`.
/// - `phone` becomes E.164, read with the row's country when it has one,
///   else with `default_region`.
/// - `postcode` gets the row country's shape rules when the row has a
///   recognised country, generic cleaning otherwise.
/// - names get the display-clean form ([`clean_name`]).
///
/// A non-blank value that normalizes to nothing yields an [`Issue`]; blank
/// values become `None` silently. All columns must have the same length.
pub fn normalize_contact_columns(
    columns: &[(&str, &[Option<&str>])],
    opts: &ContactOptions,
) -> CoreResult<NormalizedColumns> {
    let default_region = PhoneRegion::new(&opts.default_region)?;
    let n = columns.first().map_or(0, |c| c.1.len());
    for (name, values) in columns {
        if values.len() != n {
            return Err(CoreError::InvalidInput(format!(
                "column {name:?} has {} values, expected {n} like column {:?}",
                values.len(),
                columns[0].0
            )));
        }
    }
    let get = |field: &str| {
        columns
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, v)| *v)
    };

    // A column of countries holds few distinct values: each is looked up once.
    let countries: Option<Vec<Option<&'static str>>> = get("country").map(|vals| {
        let mut seen: ahash::AHashMap<&str, Option<&'static str>> = ahash::AHashMap::new();
        vals.iter()
            .map(|v| v.and_then(|s| *seen.entry(s).or_insert_with(|| normalize_country(s))))
            .collect()
    });
    let row_country = |i: usize| countries.as_ref().and_then(|c| c[i]);

    let mut regions: HashMap<&'static str, PhoneRegion> = HashMap::new();
    if let Some(cs) = &countries {
        for c in cs.iter().flatten() {
            if !regions.contains_key(c) {
                if let Ok(r) = PhoneRegion::new(c) {
                    regions.insert(c, r);
                }
            }
        }
    }

    let mut out: Vec<(&'static str, Vec<Option<String>>)> = Vec::new();
    for (name, values) in columns {
        let Some(field) = CONTACT_FIELDS.iter().find(|f| *f == name) else {
            continue;
        };
        let normalized: Vec<Option<String>> = match *field {
            "email" => values
                .par_iter()
                .map(|v| v.and_then(|s| normalize_email(s, opts.email)))
                .collect(),
            "phone" => values
                .par_iter()
                .enumerate()
                .map(|(i, v)| {
                    let region = row_country(i)
                        .and_then(|c| regions.get(c))
                        .unwrap_or(&default_region);
                    v.and_then(|s| normalize_phone(s, region))
                })
                .collect(),
            "first_name" | "last_name" => {
                values.par_iter().map(|v| v.and_then(clean_name)).collect()
            }
            "country" => countries
                .as_ref()
                .map(|c| c.iter().map(|v| v.map(str::to_string)).collect())
                .unwrap_or_default(),
            "postcode" => values
                .par_iter()
                .enumerate()
                .map(|(i, v)| v.and_then(|s| normalize_postcode(s, row_country(i))))
                .collect(),
            _ => continue,
        };
        out.push((field, normalized));
    }

    let mut issues = Vec::new();
    for (field, normalized) in &out {
        let raw = get(field).unwrap_or(&[]);
        for (row, (r, v)) in raw.iter().zip(normalized).enumerate() {
            if v.is_none() && r.is_some_and(|s| !s.trim().is_empty()) {
                issues.push(Issue {
                    row,
                    field,
                    reason: reason_for(field),
                });
            }
        }
    }
    let rank = |f: &str| CONTACT_FIELDS.iter().position(|x| *x == f).unwrap_or(99);
    issues.sort_by_key(|i| (i.row, rank(i.field)));
    Ok(NormalizedColumns {
        columns: out,
        issues,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_known_fields_and_reports_issues() {
        let email = [Some("Ann@X.com"), Some("nope"), None, Some("  ")];
        let phone = [
            Some("(202) 555-0143"),
            Some("020 7946 0958"),
            Some("12"),
            None,
        ];
        let country = [Some("USA"), Some("UK"), Some("Atlantis"), None];
        let postcode = [Some("2134"), Some("sw1a1aa"), Some("x#"), Some("ab1 2cd")];
        let first = [Some("ANN"), Some("bob"), Some(" "), Some("Cy")];
        let other = [Some("keep"), None, None, None];
        let cols: Vec<(&str, &[Option<&str>])> = vec![
            ("email", &email),
            ("phone", &phone),
            ("country", &country),
            ("postcode", &postcode),
            ("first_name", &first),
            ("company", &other),
        ];
        let r = normalize_contact_columns(&cols, &ContactOptions::default()).unwrap();
        let col = |f: &str| r.columns.iter().find(|c| c.0 == f).unwrap().1.clone();
        let s = |v: &str| Some(v.to_string());
        assert_eq!(col("email"), vec![s("ann@x.com"), None, None, None]);
        assert_eq!(
            col("phone"),
            vec![s("+12025550143"), s("+442079460958"), None, None]
        );
        assert_eq!(col("country"), vec![s("US"), s("GB"), None, None]);
        assert_eq!(
            col("postcode"),
            vec![s("02134"), s("SW1A 1AA"), None, s("AB1 2CD")]
        );
        assert_eq!(col("first_name"), vec![s("Ann"), s("Bob"), None, s("Cy")]);
        assert!(r.columns.iter().all(|c| c.0 != "company"));
        let issues: Vec<(usize, &str, &str)> = r
            .issues
            .iter()
            .map(|i| (i.row, i.field, i.reason))
            .collect();
        assert_eq!(
            issues,
            vec![
                (1, "email", "not an email address"),
                (2, "phone", "not a valid phone number"),
                (2, "country", "unknown country"),
                (2, "postcode", "not a postal code"),
            ]
        );
    }

    #[test]
    fn rejects_ragged_columns_and_bad_regions() {
        let a = [Some("x")];
        let b = [Some("y"), None];
        let cols: Vec<(&str, &[Option<&str>])> = vec![("email", &a), ("phone", &b)];
        assert!(matches!(
            normalize_contact_columns(&cols, &ContactOptions::default()),
            Err(CoreError::InvalidInput(_))
        ));
        let opts = ContactOptions {
            default_region: "XX".into(),
            ..Default::default()
        };
        assert!(normalize_contact_columns(&[], &opts).is_err());
    }
}
