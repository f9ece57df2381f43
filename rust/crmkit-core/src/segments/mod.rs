//! The segment engine: a small rule language, compiled once into a shared
//! predicate graph and evaluated over a columnar snapshot of contacts.
//!
//! # The rule language
//!
//! ```text
//! country = 'US'    age >= 30    total_spent < 100.5    status != 'lead'
//! country in ('US', 'CA')    country not in ('US')    age between 30 and 40
//! email_domain ends_with '.edu'    city starts_with 'San'    name contains 'ann'
//! phone matches '^\+1'           company is null         company is not null
//! last_seen within 30 days       signed_up before '2026-01-01'
//! signed_up after '2025-06-30'   tags contains 'vip'     tags in ('vip', 'gold')
//! in_segment('churned')          count(purchase, 90 days) >= 3
//! sum(purchase.amount, 365 days) > 500    avg/min/max(kind.amount[, N days])
//! last(email_open) within 14 days         first(purchase) before '2025-01-01'
//! (a or b) and not c
//! ```
//!
//! Keywords are case-insensitive; field names are case-sensitive and may contain
//! dots (`rfm.segment`). String literals use single quotes; inside them `\'`,
//! `\\`, `\n`, `\t` and `\r` are escapes and a backslash before any other
//! character is kept as written (so `'^\+1'` is the regex `^\+1`); a doubled
//! quote `''` is a quote too. Numbers are integers or decimals (`-3`, `2.5`,
//! `1e3`); booleans are `true`/`false`. Dates are strings `'YYYY-MM-DD'`
//! (midnight UTC) or datetimes `'YYYY-MM-DDTHH:MM[:SS][Z]'` (UTC).
//!
//! The same rule has a JSON condition tree form ([`ast::Expr::to_json`],
//! [`ast::Expr::from_json`]):
//!
//! ```text
//! {"and": [t, ...]}   {"or": [t, ...]}   {"not": t}   {"in_segment": "name"}
//! {"field": "country", "op": "=", "value": "US"}
//! {"field": "country", "op": "in", "value": ["US", "CA"]}
//! {"field": "age", "op": "between", "value": [30, 40]}
//! {"field": "company", "op": "is null"}
//! {"field": "last_seen", "op": "within", "days": 30}
//! {"agg": "count", "kind": "purchase", "days": 90, "op": ">=", "value": 3}
//! {"agg": "sum", "kind": "purchase", "prop": "amount", "days": 365, "op": ">", "value": 500}
//! {"agg": "last", "kind": "email_open", "op": "within", "days": 14}
//! ```
//!
//! `op` is one of `= != < <= > >= in, not in, between, starts_with, ends_with,
//! contains, matches, is null, is not null, within, before, after`. On an
//! aggregate, `days` is the window (omitted: all time); on `within`, `days` is
//! the distance back from the as-of time.
//!
//! # Semantics
//!
//! - **NULL rule**: any predicate on a missing value is false, except
//!   `is null` / `is not null`. `not x` is the boolean negation of the
//!   evaluated clause, so `not (age > 30)` is *true* when age is null. An empty
//!   list is not null (`tags is null` is false for `[]`); `tags contains 'x'` is
//!   false on both. A list's `in (...)` means "contains any of"; `not in (...)`
//!   means "is not null and contains none of".
//! - **Time**: every evaluation has an explicit as-of time (epoch seconds).
//!   `t within N days` means `as_of - N*86400 <= t <= as_of`; `before 'd'` means
//!   `t < d` and `after 'd'` means `t > d`, with `d` the instant of the literal.
//! - **Interactions** later than the as-of time are ignored by every aggregate.
//!   A window of `N days` keeps interactions with `as_of - N*86400 <= t <= as_of`.
//!   `count` is never null (0 when nothing matches), `sum` is 0 over nothing;
//!   `avg`, `min`, `max`, `first` and `last` are null over nothing. Missing
//!   amounts are skipped by `sum/avg/min/max` but counted by `count`.
//! - Strings compare by their bytes (case-sensitive); `matches` uses the
//!   `regex` crate's syntax and finds a match anywhere (anchor with `^`/`$`).
//! - A float literal against an integer field compares exactly
//!   (`age > 30.5` is `age >= 31`).
//!
//! # Engine
//!
//! [`compile::Plan`] interns every normalized clause and boolean node, so an
//! identical clause in many segments is evaluated once; `in_segment` reuses the
//! referenced segment's node (cycles are rejected). [`eval`] evaluates the plan
//! over blocks of contacts in parallel into one roaring bitmap per segment,
//! re-evaluates one changed contact against only the segments that read what
//! changed, explains one contact, and labels contacts with exclusive segment sets.
//! [`strindex`] sorts a large string dictionary (the first time a preview
//! needs it) so that prefix, suffix, value and range clauses read a run of
//! the order instead of testing every string.

pub mod ast;
mod codec;
pub mod compile;
pub mod eval;
pub mod events;
pub mod lexer;
pub mod members;
pub mod packed;
pub mod parser;
pub mod simd;
pub mod snapshot;
pub mod strindex;
pub mod typecheck;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use crate::convert::days_from_civil;
use crate::{CoreError, CoreResult};

pub use ast::{Expr, Json};
pub use compile::{Plan, RuleSource};
pub use eval::{EvalResult, Explain, Journal, RowUpdate};
pub use parser::parse;
pub use roaring::RoaringBitmap;
pub use snapshot::{ColumnData, Interactions, Snapshot, Value};

/// The type of a field in a [`Schema`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// UTF-8 text, dictionary-encoded.
    String,
    /// 64-bit signed integer.
    Integer,
    /// 64-bit float.
    Number,
    /// true / false.
    Boolean,
    /// A calendar date, as epoch seconds at midnight UTC.
    Date,
    /// An instant, as epoch seconds (UTC).
    Datetime,
    /// A multi-valued field: a list of strings.
    List,
}

impl FieldType {
    /// Parse a type name (`string`, `integer`, `number`, `boolean`, `date`,
    /// `datetime`, `list`, and the aliases `str`, `int`, `float`, `bool`, `tags`).
    pub fn parse(name: &str) -> CoreResult<FieldType> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "string" | "str" | "text" => FieldType::String,
            "integer" | "int" => FieldType::Integer,
            "number" | "float" | "decimal" => FieldType::Number,
            "boolean" | "bool" => FieldType::Boolean,
            "date" => FieldType::Date,
            "datetime" | "timestamp" => FieldType::Datetime,
            "list" | "tags" | "list[string]" => FieldType::List,
            _ => {
                return Err(CoreError::InvalidInput(format!(
                    "unknown field type {name:?} (expected string, integer, number, boolean, date, datetime or list)"
                )))
            }
        })
    }

    /// The canonical name of the type.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::List => "list",
        }
    }
}

/// The fields a rule may read: built-in contact fields, custom attributes and
/// categorizer outputs alike, each a name and a [`FieldType`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schema {
    fields: Vec<(String, FieldType)>,
    index: HashMap<String, usize>,
}

impl Schema {
    /// Build a schema; duplicate or empty names are an error.
    pub fn new(fields: Vec<(String, FieldType)>) -> CoreResult<Schema> {
        let mut index = HashMap::with_capacity(fields.len());
        for (i, (name, _)) in fields.iter().enumerate() {
            if name.is_empty() {
                return Err(CoreError::InvalidInput("empty field name in schema".into()));
            }
            if index.insert(name.clone(), i).is_some() {
                return Err(CoreError::InvalidInput(format!(
                    "field {name:?} declared twice in schema"
                )));
            }
        }
        Ok(Schema { fields, index })
    }

    /// The position and type of a field.
    pub fn get(&self, name: &str) -> Option<(usize, FieldType)> {
        self.index.get(name).map(|&i| (i, self.fields[i].1))
    }

    /// All fields in declaration order.
    pub fn fields(&self) -> &[(String, FieldType)] {
        &self.fields
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when the schema declares no field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// Parse `YYYY-MM-DD` or `YYYY-MM-DD[T ]HH:MM[:SS][Z]` (UTC) to epoch seconds.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let mdays = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if !(1..=12).contains(&m) {
        return None;
    }
    let maxd = if m == 2 && leap {
        29
    } else {
        mdays[(m - 1) as usize]
    };
    if d < 1 || d > maxd {
        return None;
    }
    let mut secs = days_from_civil(y, m, d) * DAY;
    let rest = &s[10..];
    if rest.is_empty() {
        return Some(secs);
    }
    let rb = rest.as_bytes();
    if rb[0] != b'T' && rb[0] != b' ' {
        return None;
    }
    let mut t = &rest[1..];
    if let Some(stripped) = t.strip_suffix('Z') {
        t = stripped;
    }
    let tb = t.as_bytes();
    if tb.len() != 5 && tb.len() != 8 {
        return None;
    }
    let tn = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = tb.get(r)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if tb[2] != b':' || (tb.len() == 8 && tb[5] != b':') {
        return None;
    }
    let hh = tn(0..2)?;
    let mm = tn(3..5)?;
    let ss = if tb.len() == 8 { tn(6..8)? } else { 0 };
    if hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    secs += hh * 3600 + mm * 60 + ss;
    Some(secs)
}

/// Format a rule error: the message, the rule, and a caret line under the
/// byte range `start..end` of `text`.
pub fn rule_error(text: &str, start: usize, end: usize, msg: &str) -> CoreError {
    let start = start.min(text.len());
    let end = end.clamp(start, text.len());
    let shown: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let col = text.get(..start).map_or(0, |p| p.chars().count());
    let width = text.get(start..end).map_or(1, |p| p.chars().count()).max(1);
    CoreError::Rule(format!(
        "{msg} (at column {})\n  {shown}\n  {}{}",
        col + 1,
        " ".repeat(col),
        "^".repeat(width)
    ))
}

/// The closest candidate to a misspelt name, if any is close enough.
pub fn did_you_mean<'a, I: IntoIterator<Item = &'a str>>(
    name: &str,
    candidates: I,
) -> Option<String> {
    let lower = name.to_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let cl = c.to_lowercase();
        let jw = strsim::jaro_winkler(&lower, &cl);
        let dl = strsim::damerau_levenshtein(&lower, &cl);
        let ok = jw >= 0.85 || dl <= 2.min(cl.chars().count().saturating_sub(1)) || cl == lower;
        if ok && best.is_none_or(|(s, _)| jw > s) {
            best = Some((jw, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}
