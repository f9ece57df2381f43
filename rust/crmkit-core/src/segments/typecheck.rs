//! Type-checking: resolve fields against the [`Schema`] and turn every
//! condition into a normalized [`Leaf`] (so equal clauses written differently,
//! like `age > 30` and `age >= 31`, become the same leaf).

use regex::Regex;

use crate::CoreResult;

use super::ast::{AggFunc, Expr, Lit, Operand, Pred, StrOp};
use super::parser::{parse_with_spans, CondSpan};
use super::{did_you_mean, parse_datetime, rule_error, FieldType, Schema};

/// A per-contact interaction aggregate that a plan needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AggKey {
    /// The interaction kind.
    pub kind: String,
    /// The function.
    pub func: AggFunc,
    /// The window in days (None: all time).
    pub days: Option<u32>,
}

impl PartialOrd for AggFunc {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for AggFunc {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (*self as u8).cmp(&(*other as u8))
    }
}

/// Where a leaf reads its values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Src {
    /// A snapshot column, by schema position.
    Col(usize),
    /// An interaction aggregate.
    Agg(AggKey),
}

/// A predicate on a string column.
#[derive(Debug, Clone)]
pub enum StrPred {
    /// Equal to one of the (sorted, distinct) values.
    In(Vec<String>),
    /// Not null and equal to none of the values.
    NotIn(Vec<String>),
    /// Byte-wise comparison `<`, `<=`, `>`, `>=`.
    Cmp(&'static str, String),
    /// Prefix.
    StartsWith(String),
    /// Suffix.
    EndsWith(String),
    /// Substring.
    Contains(String),
    /// Regex search.
    Matches(Regex),
}

impl StrPred {
    /// Whether a (non-null) string satisfies the predicate.
    pub fn test(&self, s: &str) -> bool {
        match self {
            StrPred::In(vs) => vs.binary_search_by(|v| v.as_str().cmp(s)).is_ok(),
            StrPred::NotIn(vs) => vs.binary_search_by(|v| v.as_str().cmp(s)).is_err(),
            StrPred::Cmp(op, v) => match *op {
                "<" => s < v.as_str(),
                "<=" => s <= v.as_str(),
                ">" => s > v.as_str(),
                _ => s >= v.as_str(),
            },
            StrPred::StartsWith(v) => s.starts_with(v.as_str()),
            StrPred::EndsWith(v) => s.ends_with(v.as_str()),
            StrPred::Contains(v) => s.contains(v.as_str()),
            StrPred::Matches(r) => r.is_match(s),
        }
    }
}

/// A predicate on an i64 value (integers, dates, datetimes, count, first/last).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IPred {
    /// `lo <= v <= hi` (empty when `lo > hi`).
    Range(i64, i64),
    /// One of the sorted values.
    In(Vec<i64>),
    /// None of the sorted values.
    NotIn(Vec<i64>),
    /// `as_of - days*86400 <= v <= as_of`.
    Within(u32),
}

impl IPred {
    /// Whether a (non-null) value satisfies the predicate at `as_of`.
    #[inline(always)]
    pub fn test(&self, v: i64, as_of: i64) -> bool {
        match self {
            IPred::Range(lo, hi) => *lo <= v && v <= *hi,
            IPred::In(vs) => vs.binary_search(&v).is_ok(),
            IPred::NotIn(vs) => vs.binary_search(&v).is_err(),
            IPred::Within(d) => {
                let lo = as_of.saturating_sub((*d as i64).saturating_mul(super::DAY));
                lo <= v && v <= as_of
            }
        }
    }
}

/// A predicate on an f64 value (numbers, sum/avg/min/max).
#[derive(Debug, Clone, PartialEq)]
pub enum FPred {
    /// Between `lo` and `hi`, each bound inclusive or not.
    Range {
        /// Lower bound.
        lo: f64,
        /// Lower bound included.
        lo_incl: bool,
        /// Upper bound.
        hi: f64,
        /// Upper bound included.
        hi_incl: bool,
    },
    /// Equal to one of the values.
    In(Vec<f64>),
    /// Equal to none of the values.
    NotIn(Vec<f64>),
}

impl FPred {
    /// Whether a (non-null) value satisfies the predicate.
    #[inline(always)]
    pub fn test(&self, v: f64) -> bool {
        match self {
            FPred::Range {
                lo,
                lo_incl,
                hi,
                hi_incl,
            } => {
                (if *lo_incl { v >= *lo } else { v > *lo })
                    && (if *hi_incl { v <= *hi } else { v < *hi })
            }
            FPred::In(vs) => vs.contains(&v),
            FPred::NotIn(vs) => !vs.contains(&v),
        }
    }
}

/// A normalized condition.
#[derive(Debug, Clone)]
pub enum Leaf {
    /// A string column predicate.
    Str {
        /// Column.
        col: usize,
        /// Predicate.
        pred: StrPred,
    },
    /// A list column: contains any of `values` (or, negated, is not null and contains none).
    List {
        /// Column.
        col: usize,
        /// Sorted distinct values.
        values: Vec<String>,
        /// `not in`.
        negated: bool,
    },
    /// A boolean column equals `value`.
    Bool {
        /// Column.
        col: usize,
        /// Wanted value.
        value: bool,
    },
    /// An i64 source predicate.
    Int {
        /// Source.
        src: Src,
        /// Predicate.
        pred: IPred,
    },
    /// An f64 source predicate.
    Float {
        /// Source.
        src: Src,
        /// Predicate.
        pred: FPred,
    },
    /// `is null` (or `is not null` when negated).
    IsNull {
        /// Source.
        src: Src,
        /// `is not null`.
        negated: bool,
    },
}

impl Leaf {
    /// A canonical key: two leaves with the same key always agree.
    pub fn key(&self) -> String {
        match self {
            Leaf::Str {
                col,
                pred: StrPred::Matches(r),
            } => format!("Str{col}~{:?}", r.as_str()),
            _ => format!("{self:?}"),
        }
    }

    /// The source the leaf reads.
    pub fn src(&self) -> Src {
        match self {
            Leaf::Str { col, .. } | Leaf::List { col, .. } | Leaf::Bool { col, .. } => {
                Src::Col(*col)
            }
            Leaf::Int { src, .. } | Leaf::Float { src, .. } | Leaf::IsNull { src, .. } => {
                src.clone()
            }
        }
    }

    /// True when the leaf depends on the as-of time (a `within`, or any aggregate).
    pub fn uses_clock(&self) -> bool {
        matches!(
            self,
            Leaf::Int {
                pred: IPred::Within(_),
                ..
            }
        ) || matches!(self.src(), Src::Agg(_))
    }
}

/// Leaves are equal when they are the same normalized condition (floats
/// compare by their bits, regexes by their pattern): equal leaves always agree.
impl PartialEq for Leaf {
    fn eq(&self, other: &Self) -> bool {
        fn fpred(a: &FPred, b: &FPred) -> bool {
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            match (a, b) {
                (
                    FPred::Range {
                        lo,
                        lo_incl,
                        hi,
                        hi_incl,
                    },
                    FPred::Range {
                        lo: lo2,
                        lo_incl: li2,
                        hi: hi2,
                        hi_incl: hi2i,
                    },
                ) => {
                    lo.to_bits() == lo2.to_bits()
                        && hi.to_bits() == hi2.to_bits()
                        && lo_incl == li2
                        && hi_incl == hi2i
                }
                (FPred::In(x), FPred::In(y)) | (FPred::NotIn(x), FPred::NotIn(y)) => {
                    bits(x) == bits(y)
                }
                _ => false,
            }
        }
        fn spred(a: &StrPred, b: &StrPred) -> bool {
            match (a, b) {
                (StrPred::In(x), StrPred::In(y)) | (StrPred::NotIn(x), StrPred::NotIn(y)) => x == y,
                (StrPred::Cmp(o1, x), StrPred::Cmp(o2, y)) => o1 == o2 && x == y,
                (StrPred::StartsWith(x), StrPred::StartsWith(y))
                | (StrPred::EndsWith(x), StrPred::EndsWith(y))
                | (StrPred::Contains(x), StrPred::Contains(y)) => x == y,
                (StrPred::Matches(x), StrPred::Matches(y)) => x.as_str() == y.as_str(),
                _ => false,
            }
        }
        match (self, other) {
            (Leaf::Str { col: c1, pred: p1 }, Leaf::Str { col: c2, pred: p2 }) => {
                c1 == c2 && spred(p1, p2)
            }
            (
                Leaf::List {
                    col: c1,
                    values: v1,
                    negated: n1,
                },
                Leaf::List {
                    col: c2,
                    values: v2,
                    negated: n2,
                },
            ) => c1 == c2 && v1 == v2 && n1 == n2,
            (Leaf::Bool { col: c1, value: v1 }, Leaf::Bool { col: c2, value: v2 }) => {
                c1 == c2 && v1 == v2
            }
            (Leaf::Int { src: s1, pred: p1 }, Leaf::Int { src: s2, pred: p2 }) => {
                s1 == s2 && p1 == p2
            }
            (Leaf::Float { src: s1, pred: p1 }, Leaf::Float { src: s2, pred: p2 }) => {
                s1 == s2 && fpred(p1, p2)
            }
            (
                Leaf::IsNull {
                    src: s1,
                    negated: n1,
                },
                Leaf::IsNull {
                    src: s2,
                    negated: n2,
                },
            ) => s1 == s2 && n1 == n2,
            _ => false,
        }
    }
}

impl Eq for Leaf {}

impl std::hash::Hash for Leaf {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        std::mem::discriminant(self).hash(h);
        match self {
            Leaf::Str { col, pred } => {
                col.hash(h);
                std::mem::discriminant(pred).hash(h);
                match pred {
                    StrPred::In(v) | StrPred::NotIn(v) => v.hash(h),
                    StrPred::Cmp(op, v) => {
                        op.hash(h);
                        v.hash(h);
                    }
                    StrPred::StartsWith(v) | StrPred::EndsWith(v) | StrPred::Contains(v) => {
                        v.hash(h)
                    }
                    StrPred::Matches(r) => r.as_str().hash(h),
                }
            }
            Leaf::List {
                col,
                values,
                negated,
            } => {
                col.hash(h);
                values.hash(h);
                negated.hash(h);
            }
            Leaf::Bool { col, value } => {
                col.hash(h);
                value.hash(h);
            }
            Leaf::Int { src, pred } => {
                src.hash(h);
                pred.hash(h);
            }
            Leaf::Float { src, pred } => {
                src.hash(h);
                std::mem::discriminant(pred).hash(h);
                match pred {
                    FPred::Range {
                        lo,
                        lo_incl,
                        hi,
                        hi_incl,
                    } => {
                        lo.to_bits().hash(h);
                        lo_incl.hash(h);
                        hi.to_bits().hash(h);
                        hi_incl.hash(h);
                    }
                    FPred::In(v) | FPred::NotIn(v) => {
                        v.iter().for_each(|x| x.to_bits().hash(h));
                    }
                }
            }
            Leaf::IsNull { src, negated } => {
                src.hash(h);
                negated.hash(h);
            }
        }
    }
}

/// A type-checked rule: the same shape as its [`Expr`], with leaves resolved.
#[derive(Debug, Clone)]
pub enum TExpr {
    /// All hold.
    And(Vec<TExpr>),
    /// Any holds.
    Or(Vec<TExpr>),
    /// Negation.
    Not(Box<TExpr>),
    /// A condition.
    Leaf(Leaf),
    /// Another segment's membership.
    Segment(String),
}

/// Parse and type-check a rule.
pub fn check_text(text: &str, schema: &Schema) -> CoreResult<(Expr, TExpr)> {
    let (expr, spans) = parse_with_spans(text)?;
    let mut c = Checker {
        text,
        schema,
        spans: &spans,
        next: 0,
    };
    let t = c.check(&expr)?;
    Ok((expr, t))
}

/// Type-check a JSON condition tree (through its text form, so errors show a caret).
pub fn check_expr(expr: &Expr, schema: &Schema) -> CoreResult<(Expr, TExpr)> {
    let mut c = Checker {
        text: "",
        schema,
        spans: &[],
        next: 0,
    };
    match c.check(expr) {
        Ok(t) => Ok((expr.clone(), t)),
        // Re-check the text form for an error message with a caret.
        Err(_) => check_text(&expr.to_text(), schema),
    }
}

struct Checker<'a> {
    text: &'a str,
    schema: &'a Schema,
    spans: &'a [CondSpan],
    next: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Str,
    List,
    Bool,
    Int,
    Float,
    Time,
}

fn lit_desc(l: &Lit) -> String {
    match l {
        Lit::Str(_) => "a string".into(),
        Lit::Int(_) | Lit::Num(_) => "a number".into(),
        Lit::Bool(_) => "a boolean".into(),
    }
}

fn sorted<T: PartialOrd + Clone>(mut v: Vec<T>) -> Vec<T> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v.dedup_by(|a, b| a == b);
    v
}

fn clamp_range(lo: i128, hi: i128) -> IPred {
    if lo > hi || lo > i64::MAX as i128 || hi < i64::MIN as i128 {
        IPred::Range(1, 0)
    } else {
        IPred::Range(
            lo.max(i64::MIN as i128) as i64,
            hi.min(i64::MAX as i128) as i64,
        )
    }
}

/// Lower / upper integer bound of `v op x` for a numeric literal.
fn int_cmp(op: &str, x: &Lit) -> IPred {
    let (fl, ce): (i128, i128) = match x {
        Lit::Int(i) => (*i as i128, *i as i128),
        Lit::Num(f) => (f.floor() as i128, f.ceil() as i128),
        _ => unreachable_lit(),
    };
    let (min, max) = (i64::MIN as i128, i64::MAX as i128);
    match op {
        "=" => {
            if fl == ce {
                clamp_range(fl, fl)
            } else {
                IPred::Range(1, 0)
            }
        }
        "!=" => {
            if fl == ce && (min..=max).contains(&fl) {
                IPred::NotIn(vec![fl as i64])
            } else {
                IPred::NotIn(vec![])
            }
        }
        "<" => clamp_range(min, ce - 1),
        "<=" => clamp_range(min, fl),
        ">" => clamp_range(fl + 1, max),
        _ => clamp_range(ce, max),
    }
}

fn unreachable_lit() -> (i128, i128) {
    (1, 0)
}

fn lit_f64(l: &Lit) -> Option<f64> {
    match l {
        Lit::Int(i) => Some(*i as f64),
        Lit::Num(f) => Some(*f),
        _ => None,
    }
}

fn lit_int_exact(l: &Lit) -> Option<i64> {
    match l {
        Lit::Int(i) => Some(*i),
        Lit::Num(f) if f.fract() == 0.0 && *f >= i64::MIN as f64 && *f < i64::MAX as f64 => {
            Some(*f as i64)
        }
        _ => None,
    }
}

impl Checker<'_> {
    fn check(&mut self, e: &Expr) -> CoreResult<TExpr> {
        Ok(match e {
            Expr::And(cs) => TExpr::And(
                cs.iter()
                    .map(|c| self.check(c))
                    .collect::<CoreResult<_>>()?,
            ),
            Expr::Or(cs) => TExpr::Or(
                cs.iter()
                    .map(|c| self.check(c))
                    .collect::<CoreResult<_>>()?,
            ),
            Expr::Not(c) => TExpr::Not(Box::new(self.check(c)?)),
            Expr::InSegment(n) => {
                self.next += 1;
                TExpr::Segment(n.clone())
            }
            Expr::Cond(o, p) => {
                let span = self.spans.get(self.next).copied().unwrap_or(CondSpan {
                    operand: (0, self.text.len()),
                    pred: (0, self.text.len()),
                });
                self.next += 1;
                TExpr::Leaf(self.leaf(o, p, span)?)
            }
        })
    }

    fn leaf(&self, o: &Operand, p: &Pred, span: CondSpan) -> CoreResult<Leaf> {
        let (src, kind, what) = match o {
            Operand::Field(f) => match self.schema.get(f) {
                Some((i, t)) => {
                    let k = match t {
                        FieldType::String => Kind::Str,
                        FieldType::List => Kind::List,
                        FieldType::Boolean => Kind::Bool,
                        FieldType::Integer => Kind::Int,
                        FieldType::Number => Kind::Float,
                        FieldType::Date | FieldType::Datetime => Kind::Time,
                    };
                    (
                        Src::Col(i),
                        k,
                        format!(
                            "'{f}' is {} {}",
                            if t == FieldType::Integer { "an" } else { "a" },
                            t.name()
                        ),
                    )
                }
                None => {
                    let mut msg = format!("unknown field '{f}'");
                    if let Some(s) =
                        did_you_mean(f, self.schema.fields().iter().map(|(n, _)| n.as_str()))
                    {
                        msg.push_str(&format!(": did you mean '{s}'?"));
                    }
                    return Err(rule_error(self.text, span.operand.0, span.operand.1, &msg));
                }
            },
            Operand::Agg { func, kind, days } => {
                let key = AggKey {
                    kind: kind.clone(),
                    func: *func,
                    days: *days,
                };
                let k = match func {
                    AggFunc::Count => Kind::Int,
                    AggFunc::First | AggFunc::Last => Kind::Time,
                    _ => Kind::Float,
                };
                let desc = match k {
                    Kind::Int => "an integer",
                    Kind::Time => "a datetime",
                    _ => "a number",
                };
                (Src::Agg(key), k, format!("{}() is {desc}", func.name()))
            }
        };
        let err = |msg: String| Err(rule_error(self.text, span.pred.0, span.pred.1, &msg));
        let col = match &src {
            Src::Col(c) => *c,
            Src::Agg(_) => usize::MAX,
        };
        if let Pred::IsNull(neg) = p {
            return Ok(Leaf::IsNull { src, negated: *neg });
        }
        let op_name = match p {
            Pred::Cmp(op, _) => (*op).to_string(),
            Pred::In(_, n) => if *n { "not in" } else { "in" }.into(),
            Pred::Between(..) => "between".into(),
            Pred::Str(op, _) => op.name().into(),
            Pred::IsNull(_) => "is null".into(),
            Pred::Within(_) => "within".into(),
            Pred::Before(_) => "before".into(),
            Pred::After(_) => "after".into(),
        };
        let not_for = |hint: &str| -> CoreResult<Leaf> {
            err(format!(
                "type error: '{op_name}' does not apply here: {what}{hint}"
            ))
        };
        let mismatch = |l: &Lit| -> CoreResult<Leaf> {
            err(format!(
                "type error: {what}, but the value is {}",
                lit_desc(l)
            ))
        };
        match kind {
            Kind::Str => {
                let strs = |ls: &[Lit]| -> Result<Vec<String>, Lit> {
                    ls.iter()
                        .map(|l| match l {
                            Lit::Str(s) => Ok(s.clone()),
                            o => Err(o.clone()),
                        })
                        .collect()
                };
                let pred = match p {
                    Pred::Cmp(op, Lit::Str(s)) => match *op {
                        "=" => StrPred::In(vec![s.clone()]),
                        "!=" => StrPred::NotIn(vec![s.clone()]),
                        o => StrPred::Cmp(o, s.clone()),
                    },
                    Pred::Cmp(_, l) => return mismatch(l),
                    Pred::In(ls, neg) => match strs(ls) {
                        Ok(v) => {
                            if *neg {
                                StrPred::NotIn(sorted(v))
                            } else {
                                StrPred::In(sorted(v))
                            }
                        }
                        Err(l) => return mismatch(&l),
                    },
                    Pred::Str(StrOp::StartsWith, s) => StrPred::StartsWith(s.clone()),
                    Pred::Str(StrOp::EndsWith, s) => StrPred::EndsWith(s.clone()),
                    Pred::Str(StrOp::Contains, s) => StrPred::Contains(s.clone()),
                    Pred::Str(StrOp::Matches, s) => {
                        match regex::RegexBuilder::new(s).size_limit(1 << 20).build() {
                            Ok(r) => StrPred::Matches(r),
                            Err(_) => return err("invalid regular expression".into()),
                        }
                    }
                    _ => return not_for(""),
                };
                Ok(Leaf::Str { col, pred })
            }
            Kind::List => {
                let (vals, negated) = match p {
                    Pred::Str(StrOp::Contains, s) => (vec![s.clone()], false),
                    Pred::In(ls, neg) => {
                        let mut v = Vec::new();
                        for l in ls {
                            match l {
                                Lit::Str(s) => v.push(s.clone()),
                                o => return mismatch(o),
                            }
                        }
                        (sorted(v), *neg)
                    }
                    _ => return not_for(" (a list supports contains, in, not in, is null)"),
                };
                Ok(Leaf::List {
                    col,
                    values: vals,
                    negated,
                })
            }
            Kind::Bool => match p {
                Pred::Cmp("=", Lit::Bool(b)) => Ok(Leaf::Bool { col, value: *b }),
                Pred::Cmp("!=", Lit::Bool(b)) => Ok(Leaf::Bool { col, value: !*b }),
                Pred::Cmp("=" | "!=", l) => mismatch(l),
                _ => not_for(" (a boolean supports =, != and is null)"),
            },
            Kind::Int => {
                let num = |l: &Lit| -> CoreResult<()> {
                    if lit_f64(l).is_some() {
                        Ok(())
                    } else {
                        mismatch(l).map(|_| ())
                    }
                };
                let pred = match p {
                    Pred::Cmp(op, l) => {
                        num(l)?;
                        int_cmp(op, l)
                    }
                    Pred::In(ls, neg) => {
                        for l in ls {
                            num(l)?;
                        }
                        let v = sorted(ls.iter().filter_map(lit_int_exact).collect());
                        if *neg {
                            IPred::NotIn(v)
                        } else {
                            IPred::In(v)
                        }
                    }
                    Pred::Between(a, b) => {
                        num(a)?;
                        num(b)?;
                        let lo = match int_cmp(">=", a) {
                            IPred::Range(lo, _) => lo as i128,
                            _ => 1,
                        };
                        let hi = match int_cmp("<=", b) {
                            IPred::Range(_, hi) => hi as i128,
                            _ => 0,
                        };
                        let (lo, hi) = if int_cmp(">=", a) == IPred::Range(1, 0)
                            || int_cmp("<=", b) == IPred::Range(1, 0)
                        {
                            (1, 0)
                        } else {
                            (lo, hi)
                        };
                        clamp_range(lo, hi)
                    }
                    Pred::Within(_) | Pred::Before(_) | Pred::After(_) => {
                        return not_for(", not a date")
                    }
                    _ => return not_for(""),
                };
                Ok(Leaf::Int { src, pred })
            }
            Kind::Float => {
                let num = |l: &Lit| -> CoreResult<f64> {
                    lit_f64(l).map_or_else(|| mismatch(l).map(|_| 0.0), Ok)
                };
                let pred = match p {
                    Pred::Cmp(op, l) => {
                        let x = num(l)?;
                        let (ninf, inf) = (f64::NEG_INFINITY, f64::INFINITY);
                        match *op {
                            "=" => FPred::Range {
                                lo: x,
                                lo_incl: true,
                                hi: x,
                                hi_incl: true,
                            },
                            "!=" => FPred::NotIn(vec![x]),
                            "<" => FPred::Range {
                                lo: ninf,
                                lo_incl: true,
                                hi: x,
                                hi_incl: false,
                            },
                            "<=" => FPred::Range {
                                lo: ninf,
                                lo_incl: true,
                                hi: x,
                                hi_incl: true,
                            },
                            ">" => FPred::Range {
                                lo: x,
                                lo_incl: false,
                                hi: inf,
                                hi_incl: true,
                            },
                            _ => FPred::Range {
                                lo: x,
                                lo_incl: true,
                                hi: inf,
                                hi_incl: true,
                            },
                        }
                    }
                    Pred::In(ls, neg) => {
                        let v = sorted(ls.iter().map(num).collect::<CoreResult<Vec<f64>>>()?);
                        if *neg {
                            FPred::NotIn(v)
                        } else {
                            FPred::In(v)
                        }
                    }
                    Pred::Between(a, b) => FPred::Range {
                        lo: num(a)?,
                        lo_incl: true,
                        hi: num(b)?,
                        hi_incl: true,
                    },
                    Pred::Within(_) | Pred::Before(_) | Pred::After(_) => {
                        return not_for(", not a date")
                    }
                    _ => return not_for(""),
                };
                Ok(Leaf::Float { src, pred })
            }
            Kind::Time => {
                let date = |l: &Lit| -> CoreResult<i64> {
                    match l {
                        Lit::Str(s) => match parse_datetime(s) {
                            Some(t) => Ok(t),
                            None => err(
                                "invalid date: expected 'YYYY-MM-DD' or 'YYYY-MM-DDTHH:MM:SS'"
                                    .into(),
                            )
                            .map(|_: Leaf| 0),
                        },
                        o => err(format!(
                            "type error: {what}, but the value is {} (write dates as 'YYYY-MM-DD')",
                            lit_desc(o)
                        ))
                        .map(|_: Leaf| 0),
                    }
                };
                let pred = match p {
                    Pred::Cmp(op, l) => int_cmp(op, &Lit::Int(date(l)?)),
                    Pred::In(ls, neg) => {
                        let v = sorted(ls.iter().map(date).collect::<CoreResult<Vec<_>>>()?);
                        if *neg {
                            IPred::NotIn(v)
                        } else {
                            IPred::In(v)
                        }
                    }
                    Pred::Between(a, b) => clamp_range(date(a)? as i128, date(b)? as i128),
                    Pred::Within(d) => IPred::Within(*d),
                    Pred::Before(s) => int_cmp("<", &Lit::Int(date(&Lit::Str(s.clone()))?)),
                    Pred::After(s) => int_cmp(">", &Lit::Int(date(&Lit::Str(s.clone()))?)),
                    _ => return not_for(""),
                };
                Ok(Leaf::Int { src, pred })
            }
        }
    }
}
