//! The rule tree, its canonical text form and its JSON condition-tree form.

use crate::{CoreError, CoreResult};

/// A literal value in a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// A string (also dates and datetimes, which are typed by the field).
    Str(String),
    /// An integer.
    Int(i64),
    /// A decimal number.
    Num(f64),
    /// `true` / `false`.
    Bool(bool),
}

/// An aggregate function over a contact's interactions of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggFunc {
    /// Number of interactions.
    Count,
    /// Sum of amounts (0 over nothing).
    Sum,
    /// Mean amount (null over nothing).
    Avg,
    /// Smallest amount (null over nothing).
    Min,
    /// Largest amount (null over nothing).
    Max,
    /// Time of the earliest interaction (null when none).
    First,
    /// Time of the latest interaction (null when none).
    Last,
}

impl AggFunc {
    /// The function's name in rules.
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::First => "first",
            AggFunc::Last => "last",
        }
    }

    /// Parse a function name (case-insensitive).
    pub fn parse(s: &str) -> Option<AggFunc> {
        Some(match s.to_ascii_lowercase().as_str() {
            "count" => AggFunc::Count,
            "sum" => AggFunc::Sum,
            "avg" => AggFunc::Avg,
            "min" => AggFunc::Min,
            "max" => AggFunc::Max,
            "first" => AggFunc::First,
            "last" => AggFunc::Last,
            _ => return None,
        })
    }

    /// True for the functions that read the amount (`sum/avg/min/max`).
    pub fn reads_amount(self) -> bool {
        matches!(
            self,
            AggFunc::Sum | AggFunc::Avg | AggFunc::Min | AggFunc::Max
        )
    }
}

/// What a condition tests: a field or an interaction aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A schema field.
    Field(String),
    /// An aggregate of the contact's interactions of `kind`; `days` is the
    /// window (None: all time). `first`/`last` never have a window.
    Agg {
        /// The function.
        func: AggFunc,
        /// The interaction kind.
        kind: String,
        /// The window in days.
        days: Option<u32>,
    },
}

/// A string operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrOp {
    /// `starts_with`
    StartsWith,
    /// `ends_with`
    EndsWith,
    /// `contains` (substring; element equality on a list)
    Contains,
    /// `matches` (regex search)
    Matches,
}

impl StrOp {
    /// The operator's keyword.
    pub fn name(self) -> &'static str {
        match self {
            StrOp::StartsWith => "starts_with",
            StrOp::EndsWith => "ends_with",
            StrOp::Contains => "contains",
            StrOp::Matches => "matches",
        }
    }
}

/// The test applied to an operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Pred {
    /// `= != < <= > >=` with a literal.
    Cmp(&'static str, Lit),
    /// `in (...)` or, when the flag is set, `not in (...)`.
    In(Vec<Lit>, bool),
    /// `between lo and hi` (inclusive).
    Between(Lit, Lit),
    /// A string operator.
    Str(StrOp, String),
    /// `is null` or, when the flag is set, `is not null`.
    IsNull(bool),
    /// `within N days`.
    Within(u32),
    /// `before 'date'`.
    Before(String),
    /// `after 'date'`.
    After(String),
}

/// A rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// All children hold (at least two).
    And(Vec<Expr>),
    /// Any child holds (at least two).
    Or(Vec<Expr>),
    /// Negation of the evaluated child.
    Not(Box<Expr>),
    /// A condition on one operand.
    Cond(Operand, Pred),
    /// Membership of another segment.
    InSegment(String),
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn render_lit(l: &Lit) -> String {
    match l {
        Lit::Str(s) => quote(s),
        Lit::Int(i) => i.to_string(),
        Lit::Num(f) => format!("{f:?}"),
        Lit::Bool(b) => b.to_string(),
    }
}

fn is_plain_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
        && !s.ends_with('.')
        && !s.contains("..")
}

fn render_kind(k: &str) -> String {
    if is_plain_ident(k) {
        k.to_string()
    } else {
        quote(k)
    }
}

impl Operand {
    /// The operand's text form.
    pub fn to_text(&self) -> String {
        match self {
            Operand::Field(f) => f.clone(),
            Operand::Agg { func, kind, days } => {
                let mut s = format!("{}({}", func.name(), render_kind(kind));
                if func.reads_amount() && is_plain_ident(kind) {
                    s.push_str(".amount");
                }
                if let Some(d) = days {
                    s.push_str(&format!(", {d} days"));
                }
                s.push(')');
                s
            }
        }
    }
}

impl Pred {
    /// The predicate's text form (without the operand).
    pub fn to_text(&self) -> String {
        match self {
            Pred::Cmp(op, l) => format!("{op} {}", render_lit(l)),
            Pred::In(vs, neg) => format!(
                "{}in ({})",
                if *neg { "not " } else { "" },
                vs.iter().map(render_lit).collect::<Vec<_>>().join(", ")
            ),
            Pred::Between(a, b) => format!("between {} and {}", render_lit(a), render_lit(b)),
            Pred::Str(op, s) => format!("{} {}", op.name(), quote(s)),
            Pred::IsNull(neg) => if *neg { "is not null" } else { "is null" }.to_string(),
            Pred::Within(d) => format!("within {d} days"),
            Pred::Before(s) => format!("before {}", quote(s)),
            Pred::After(s) => format!("after {}", quote(s)),
        }
    }
}

impl Expr {
    /// The canonical text form; parsing it gives back an equal tree.
    pub fn to_text(&self) -> String {
        match self {
            Expr::And(cs) => cs
                .iter()
                .map(|c| match c {
                    Expr::Or(_) => format!("({})", c.to_text()),
                    _ => c.to_text(),
                })
                .collect::<Vec<_>>()
                .join(" and "),
            Expr::Or(cs) => cs
                .iter()
                .map(Expr::to_text)
                .collect::<Vec<_>>()
                .join(" or "),
            Expr::Not(c) => match **c {
                Expr::And(_) | Expr::Or(_) => format!("not ({})", c.to_text()),
                _ => format!("not {}", c.to_text()),
            },
            Expr::Cond(o, p) => format!("{} {}", o.to_text(), p.to_text()),
            Expr::InSegment(n) => format!("in_segment({})", quote(n)),
        }
    }

    /// Names of the segments this rule references with `in_segment`.
    pub fn segment_refs(&self, out: &mut Vec<String>) {
        match self {
            Expr::And(cs) | Expr::Or(cs) => cs.iter().for_each(|c| c.segment_refs(out)),
            Expr::Not(c) => c.segment_refs(out),
            Expr::InSegment(n) => out.push(n.clone()),
            Expr::Cond(..) => {}
        }
    }
}

/// A minimal JSON value, the bridge for condition trees.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Num(f64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object (keys in insertion order).
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

fn obj(pairs: Vec<(&str, Json)>) -> Json {
    Json::Obj(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn lit_json(l: &Lit) -> Json {
    match l {
        Lit::Str(s) => Json::Str(s.clone()),
        Lit::Int(i) => Json::Int(*i),
        Lit::Num(f) => Json::Num(*f),
        Lit::Bool(b) => Json::Bool(*b),
    }
}

fn bad(path: &str, msg: &str) -> CoreError {
    CoreError::Rule(format!("invalid condition tree at {path}: {msg}"))
}

fn json_lit(j: &Json, path: &str) -> CoreResult<Lit> {
    Ok(match j {
        Json::Str(s) => Lit::Str(s.clone()),
        Json::Int(i) => Lit::Int(*i),
        Json::Num(f) if f.is_finite() => Lit::Num(*f),
        Json::Bool(b) => Lit::Bool(*b),
        _ => return Err(bad(path, "expected a string, number or boolean value")),
    })
}

fn json_days(j: Option<&Json>, path: &str) -> CoreResult<Option<u32>> {
    match j {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Int(i)) if (0..=u32::MAX as i64).contains(i) => Ok(Some(*i as u32)),
        Some(_) => Err(bad(path, "'days' must be a non-negative integer")),
    }
}

fn json_str<'a>(j: Option<&'a Json>, key: &str, path: &str) -> CoreResult<&'a str> {
    match j {
        Some(Json::Str(s)) => Ok(s),
        _ => Err(bad(path, &format!("'{key}' must be a string"))),
    }
}

const MAX_DEPTH: usize = 200;

impl Expr {
    /// The JSON condition tree (see the module docs for the schema).
    pub fn to_json(&self) -> Json {
        match self {
            Expr::And(cs) => obj(vec![(
                "and",
                Json::Arr(cs.iter().map(Expr::to_json).collect()),
            )]),
            Expr::Or(cs) => obj(vec![(
                "or",
                Json::Arr(cs.iter().map(Expr::to_json).collect()),
            )]),
            Expr::Not(c) => obj(vec![("not", c.to_json())]),
            Expr::InSegment(n) => obj(vec![("in_segment", Json::Str(n.clone()))]),
            Expr::Cond(o, p) => {
                let mut kv: Vec<(&str, Json)> = Vec::new();
                let mut window = None;
                match o {
                    Operand::Field(f) => kv.push(("field", Json::Str(f.clone()))),
                    Operand::Agg { func, kind, days } => {
                        kv.push(("agg", Json::Str(func.name().into())));
                        kv.push(("kind", Json::Str(kind.clone())));
                        if func.reads_amount() {
                            kv.push(("prop", Json::Str("amount".into())));
                        }
                        window = *days;
                    }
                }
                if let Some(d) = window {
                    kv.push(("days", Json::Int(d as i64)));
                }
                match p {
                    Pred::Cmp(op, l) => {
                        kv.push(("op", Json::Str((*op).into())));
                        kv.push(("value", lit_json(l)));
                    }
                    Pred::In(vs, neg) => {
                        kv.push(("op", Json::Str(if *neg { "not in" } else { "in" }.into())));
                        kv.push(("value", Json::Arr(vs.iter().map(lit_json).collect())));
                    }
                    Pred::Between(a, b) => {
                        kv.push(("op", Json::Str("between".into())));
                        kv.push(("value", Json::Arr(vec![lit_json(a), lit_json(b)])));
                    }
                    Pred::Str(op, s) => {
                        kv.push(("op", Json::Str(op.name().into())));
                        kv.push(("value", Json::Str(s.clone())));
                    }
                    Pred::IsNull(neg) => {
                        kv.push((
                            "op",
                            Json::Str(if *neg { "is not null" } else { "is null" }.into()),
                        ));
                    }
                    Pred::Within(d) => {
                        kv.push(("op", Json::Str("within".into())));
                        kv.push(("days", Json::Int(*d as i64)));
                    }
                    Pred::Before(s) => {
                        kv.push(("op", Json::Str("before".into())));
                        kv.push(("value", Json::Str(s.clone())));
                    }
                    Pred::After(s) => {
                        kv.push(("op", Json::Str("after".into())));
                        kv.push(("value", Json::Str(s.clone())));
                    }
                }
                obj(kv)
            }
        }
    }

    /// Read a JSON condition tree. Structure errors name the path in the tree;
    /// field and type errors are reported by type-checking its text form.
    pub fn from_json(j: &Json) -> CoreResult<Expr> {
        Self::from_json_at(j, "$", 0)
    }

    fn from_json_at(j: &Json, path: &str, depth: usize) -> CoreResult<Expr> {
        if depth > MAX_DEPTH {
            return Err(bad(path, "tree nested too deeply"));
        }
        let Json::Obj(kv) = j else {
            return Err(bad(path, "expected an object"));
        };
        let children = |key: &str, arr: &Json| -> CoreResult<Vec<Expr>> {
            let Json::Arr(items) = arr else {
                return Err(bad(path, &format!("'{key}' must be a list")));
            };
            if items.is_empty() {
                return Err(bad(path, &format!("'{key}' needs at least one condition")));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, c)| Self::from_json_at(c, &format!("{path}.{key}[{i}]"), depth + 1))
                .collect()
        };
        if let Some(a) = j.get("and") {
            if kv.len() != 1 {
                return Err(bad(path, "'and' must be the only key"));
            }
            return Ok(flatten(children("and", a)?, true));
        }
        if let Some(a) = j.get("or") {
            if kv.len() != 1 {
                return Err(bad(path, "'or' must be the only key"));
            }
            return Ok(flatten(children("or", a)?, false));
        }
        if let Some(c) = j.get("not") {
            if kv.len() != 1 {
                return Err(bad(path, "'not' must be the only key"));
            }
            return Ok(Expr::Not(Box::new(Self::from_json_at(
                c,
                &format!("{path}.not"),
                depth + 1,
            )?)));
        }
        if let Some(s) = j.get("in_segment") {
            return Ok(Expr::InSegment(
                json_str(Some(s), "in_segment", path)?.to_string(),
            ));
        }
        for (k, _) in kv {
            if !matches!(
                k.as_str(),
                "field" | "agg" | "kind" | "prop" | "days" | "op" | "value"
            ) {
                return Err(bad(path, &format!("unknown key '{k}'")));
            }
        }
        let op = json_str(j.get("op"), "op", path)?.to_ascii_lowercase();
        let (operand, agg_days_used) = if let Some(f) = j.get("field") {
            let name = json_str(Some(f), "field", path)?;
            if !is_plain_ident(name) {
                return Err(bad(
                    path,
                    &format!(
                        "field name {name:?} is not an identifier (letters, digits, '_', '.')"
                    ),
                ));
            }
            (Operand::Field(name.to_string()), false)
        } else if let Some(a) = j.get("agg") {
            let name = json_str(Some(a), "agg", path)?;
            let func = AggFunc::parse(name)
                .ok_or_else(|| bad(path, &format!("unknown aggregate '{name}'")))?;
            let kind = json_str(j.get("kind"), "kind", path)?.to_string();
            if func.reads_amount() {
                if let Some(p) = j.get("prop") {
                    if json_str(Some(p), "prop", path)? != "amount" {
                        return Err(bad(path, "only the 'amount' property can be aggregated"));
                    }
                }
            }
            let is_time = matches!(func, AggFunc::First | AggFunc::Last);
            let days = if is_time {
                None
            } else {
                json_days(j.get("days"), path)?
            };
            (Operand::Agg { func, kind, days }, !is_time)
        } else {
            return Err(bad(
                path,
                "expected one of 'and', 'or', 'not', 'in_segment', 'field', 'agg'",
            ));
        };
        let value = || {
            j.get("value")
                .ok_or_else(|| bad(path, &format!("'{op}' needs a 'value'")))
        };
        let pred = match op.as_str() {
            "=" | "==" | "!=" | "<" | "<=" | ">" | ">=" => {
                let o: &'static str = match op.as_str() {
                    "=" | "==" => "=",
                    "!=" => "!=",
                    "<" => "<",
                    "<=" => "<=",
                    ">" => ">",
                    _ => ">=",
                };
                Pred::Cmp(o, json_lit(value()?, path)?)
            }
            "in" | "not in" => {
                let Json::Arr(items) = value()? else {
                    return Err(bad(path, "'in' needs a list value"));
                };
                if items.is_empty() {
                    return Err(bad(path, "'in' needs at least one value"));
                }
                Pred::In(
                    items
                        .iter()
                        .map(|v| json_lit(v, path))
                        .collect::<CoreResult<_>>()?,
                    op == "not in",
                )
            }
            "between" => match value()? {
                Json::Arr(items) if items.len() == 2 => {
                    Pred::Between(json_lit(&items[0], path)?, json_lit(&items[1], path)?)
                }
                _ => return Err(bad(path, "'between' needs a value [low, high]")),
            },
            "starts_with" | "ends_with" | "contains" | "matches" => {
                let sop = match op.as_str() {
                    "starts_with" => StrOp::StartsWith,
                    "ends_with" => StrOp::EndsWith,
                    "contains" => StrOp::Contains,
                    _ => StrOp::Matches,
                };
                Pred::Str(sop, json_str(j.get("value"), "value", path)?.to_string())
            }
            "is null" => Pred::IsNull(false),
            "is not null" => Pred::IsNull(true),
            "within" => {
                if agg_days_used {
                    return Err(bad(
                        path,
                        "'within' applies to dates and to first/last, not to this aggregate",
                    ));
                }
                Pred::Within(
                    json_days(j.get("days"), path)?
                        .ok_or_else(|| bad(path, "'within' needs 'days'"))?,
                )
            }
            "before" => Pred::Before(json_str(j.get("value"), "value", path)?.to_string()),
            "after" => Pred::After(json_str(j.get("value"), "value", path)?.to_string()),
            other => return Err(bad(path, &format!("unknown op '{other}'"))),
        };
        Ok(Expr::Cond(operand, pred))
    }
}

/// Build an n-ary and/or, flattening nested nodes of the same kind; one child is returned as is.
pub fn flatten(children: Vec<Expr>, is_and: bool) -> Expr {
    let mut out = Vec::with_capacity(children.len());
    for c in children {
        match c {
            Expr::And(cs) if is_and => out.extend(cs),
            Expr::Or(cs) if !is_and => out.extend(cs),
            c => out.push(c),
        }
    }
    if out.len() == 1 {
        return out.pop().expect("one child");
    }
    if is_and {
        Expr::And(out)
    } else {
        Expr::Or(out)
    }
}
