//! Recursive-descent parser for the rule language. It never panics: every
//! malformed input, however hostile, is a [`CoreError::Rule`](crate::CoreError::Rule) with a caret.

use crate::CoreResult;

use super::ast::{flatten, AggFunc, Expr, Lit, Operand, Pred, StrOp};
use super::lexer::{lex, Tok, Token};
use super::{did_you_mean, rule_error};

/// Byte spans of one condition (or `in_segment`) in the rule text, in the
/// pre-order in which [`parse_with_spans`] met them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CondSpan {
    /// The operand (field, aggregate, or segment name).
    pub operand: (usize, usize),
    /// The predicate (operator and literals).
    pub pred: (usize, usize),
}

/// Maximum nesting of parentheses and `not`.
pub const MAX_DEPTH: usize = 200;

const PRED_WORDS: [&str; 11] = [
    "in",
    "not",
    "between",
    "starts_with",
    "ends_with",
    "contains",
    "matches",
    "is",
    "within",
    "before",
    "after",
];

struct Parser<'a> {
    text: &'a str,
    toks: Vec<Token>,
    i: usize,
    spans: Vec<CondSpan>,
}

fn kw(t: &Tok, word: &str) -> bool {
    matches!(t, Tok::Ident(s) if s.eq_ignore_ascii_case(word))
}

/// Parse a rule into its tree.
pub fn parse(text: &str) -> CoreResult<Expr> {
    parse_with_spans(text).map(|(e, _)| e)
}

/// Parse a rule into its tree and the spans of its conditions (pre-order).
pub fn parse_with_spans(text: &str) -> CoreResult<(Expr, Vec<CondSpan>)> {
    let toks = lex(text)?;
    let mut p = Parser {
        text,
        toks,
        i: 0,
        spans: Vec::new(),
    };
    if matches!(p.peek().tok, Tok::Eof) {
        return Err(rule_error(text, 0, text.len(), "empty rule"));
    }
    let e = p.or(0)?;
    let t = p.peek().clone();
    if !matches!(t.tok, Tok::Eof) {
        let mut msg = "expected 'and', 'or' or the end of the rule".to_string();
        if let Tok::Ident(s) = &t.tok {
            if let Some(s) = did_you_mean(s, ["and", "or"]) {
                msg.push_str(&format!(": did you mean '{s}'?"));
            }
        }
        if matches!(t.tok, Tok::RParen) {
            msg = "unbalanced ')'".into();
        }
        return Err(rule_error(text, t.start, t.end, &msg));
    }
    Ok((e, p.spans))
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }
    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }
    fn err<T>(&self, t: &Token, msg: &str) -> CoreResult<T> {
        Err(rule_error(self.text, t.start, t.end.max(t.start + 1), msg))
    }
    fn expect(&mut self, want: Tok, what: &str) -> CoreResult<Token> {
        let t = self.bump();
        if t.tok == want {
            Ok(t)
        } else {
            self.err(&t, &format!("expected {what}"))
        }
    }
    fn expect_kw(&mut self, word: &str) -> CoreResult<Token> {
        let t = self.bump();
        if kw(&t.tok, word) {
            Ok(t)
        } else {
            self.err(&t, &format!("expected '{word}'"))
        }
    }

    fn or(&mut self, depth: usize) -> CoreResult<Expr> {
        let mut parts = vec![self.and(depth)?];
        while kw(&self.peek().tok, "or") {
            self.bump();
            parts.push(self.and(depth)?);
        }
        Ok(flatten(parts, false))
    }

    fn and(&mut self, depth: usize) -> CoreResult<Expr> {
        let mut parts = vec![self.unary(depth)?];
        while kw(&self.peek().tok, "and") {
            self.bump();
            parts.push(self.unary(depth)?);
        }
        Ok(flatten(parts, true))
    }

    fn unary(&mut self, depth: usize) -> CoreResult<Expr> {
        if depth > MAX_DEPTH {
            let t = self.peek().clone();
            return self.err(&t, "rule nested too deeply");
        }
        let t = self.peek().clone();
        if kw(&t.tok, "not") {
            self.bump();
            let inner = self.unary(depth + 1)?;
            return Ok(Expr::Not(Box::new(inner)));
        }
        if matches!(t.tok, Tok::LParen) {
            self.bump();
            let e = self.or(depth + 1)?;
            let close = self.bump();
            if !matches!(close.tok, Tok::RParen) {
                let mut msg = "expected ')'".to_string();
                if let Tok::Ident(s) = &close.tok {
                    if let Some(s) = did_you_mean(s, ["and", "or"]) {
                        msg = format!("expected 'and', 'or' or ')': did you mean '{s}'?");
                    }
                }
                return self.err(&close, &msg);
            }
            return Ok(e);
        }
        self.cond()
    }

    fn cond(&mut self) -> CoreResult<Expr> {
        let t = self.bump();
        let name = match &t.tok {
            Tok::Ident(s) if s.eq_ignore_ascii_case("and") || s.eq_ignore_ascii_case("or") => {
                return self.err(
                    &t,
                    &format!("expected a condition before '{}'", s.to_lowercase()),
                );
            }
            Tok::Ident(s) => s.clone(),
            Tok::Eof => return self.err(&t, "expected a condition, the rule ends too early"),
            _ => return self.err(&t, "expected a field name, 'not' or '('"),
        };
        let is_call = matches!(self.peek().tok, Tok::LParen);
        if is_call && name.eq_ignore_ascii_case("in_segment") {
            self.bump();
            let s = self.bump();
            let Tok::Str(seg) = s.tok.clone() else {
                return self.err(&s, "expected a quoted segment name");
            };
            let close = self.expect(Tok::RParen, "')'")?;
            self.spans.push(CondSpan {
                operand: (s.start, s.end),
                pred: (t.start, close.end),
            });
            return Ok(Expr::InSegment(seg));
        }
        let operand = if is_call {
            let Some(func) = AggFunc::parse(&name) else {
                let mut msg = format!("unknown function '{name}'");
                if let Some(s) = did_you_mean(
                    &name,
                    [
                        "count",
                        "sum",
                        "avg",
                        "min",
                        "max",
                        "first",
                        "last",
                        "in_segment",
                    ],
                ) {
                    msg.push_str(&format!(": did you mean '{s}'?"));
                }
                return self.err(&t, &msg);
            };
            self.bump();
            let k = self.bump();
            let kind = match (&k.tok, func.reads_amount()) {
                (Tok::Str(s), _) => s.clone(),
                (Tok::Ident(s), true) => s.strip_suffix(".amount").unwrap_or(s).to_string(),
                (Tok::Ident(s), false) => s.clone(),
                _ => return self.err(&k, "expected an interaction kind"),
            };
            if kind.is_empty() {
                return self.err(&k, "empty interaction kind");
            }
            let mut days = None;
            if matches!(self.peek().tok, Tok::Comma) {
                let comma = self.bump();
                if matches!(func, AggFunc::First | AggFunc::Last) {
                    return self.err(
                        &comma,
                        &format!(
                            "{}() takes no window; use `{}(kind) within N days`",
                            func.name(),
                            func.name()
                        ),
                    );
                }
                days = Some(self.days()?);
            }
            self.expect(Tok::RParen, "')' or ', N days'")?;
            Operand::Agg { func, kind, days }
        } else {
            Operand::Field(name)
        };
        let operand_span = (t.start, self.toks[self.i.saturating_sub(1)].end);
        let pstart = self.peek().start;
        let pred = self.pred()?;
        let pend = self.toks[self.i.saturating_sub(1)].end;
        self.spans.push(CondSpan {
            operand: operand_span,
            pred: (pstart, pend),
        });
        Ok(Expr::Cond(operand, pred))
    }

    fn days(&mut self) -> CoreResult<u32> {
        let n = self.bump();
        let d = match n.tok {
            Tok::Int(v) if (0..=u32::MAX as i64).contains(&v) => v as u32,
            _ => return self.err(&n, "expected a whole number of days"),
        };
        let unit = self.bump();
        if !(kw(&unit.tok, "days") || kw(&unit.tok, "day")) {
            return self.err(&unit, "expected 'days'");
        }
        Ok(d)
    }

    fn lit(&mut self) -> CoreResult<Lit> {
        let t = self.bump();
        Ok(match t.tok {
            Tok::Str(s) => Lit::Str(s),
            Tok::Int(i) => Lit::Int(i),
            Tok::Num(f) => Lit::Num(f),
            Tok::Ident(ref s) if s.eq_ignore_ascii_case("true") => Lit::Bool(true),
            Tok::Ident(ref s) if s.eq_ignore_ascii_case("false") => Lit::Bool(false),
            Tok::Ident(ref s) if s.eq_ignore_ascii_case("null") => {
                return self.err(&t, "compare with null using 'is null' or 'is not null'")
            }
            Tok::Ident(_) => {
                return self.err(&t, "expected a value; strings use single quotes ('...')")
            }
            _ => return self.err(&t, "expected a value"),
        })
    }

    fn str_lit(&mut self, what: &str) -> CoreResult<String> {
        let t = self.bump();
        match t.tok {
            Tok::Str(s) => Ok(s),
            _ => self.err(&t, &format!("expected {what} in single quotes")),
        }
    }

    fn list(&mut self) -> CoreResult<Vec<Lit>> {
        self.expect(Tok::LParen, "'(' and a list of values")?;
        let mut out = vec![self.lit()?];
        loop {
            let t = self.bump();
            match t.tok {
                Tok::Comma => out.push(self.lit()?),
                Tok::RParen => return Ok(out),
                _ => return self.err(&t, "expected ',' or ')'"),
            }
        }
    }

    fn pred(&mut self) -> CoreResult<Pred> {
        let t = self.bump();
        match &t.tok {
            Tok::Op(op) => Ok(Pred::Cmp(op, self.lit()?)),
            Tok::Ident(w) => {
                let w = w.to_ascii_lowercase();
                match w.as_str() {
                    "in" => Ok(Pred::In(self.list()?, false)),
                    "not" => {
                        self.expect_kw("in")?;
                        Ok(Pred::In(self.list()?, true))
                    }
                    "between" => {
                        let lo = self.lit()?;
                        self.expect_kw("and")?;
                        let hi = self.lit()?;
                        Ok(Pred::Between(lo, hi))
                    }
                    "starts_with" => Ok(Pred::Str(StrOp::StartsWith, self.str_lit("a string")?)),
                    "ends_with" => Ok(Pred::Str(StrOp::EndsWith, self.str_lit("a string")?)),
                    "contains" => Ok(Pred::Str(StrOp::Contains, self.str_lit("a string")?)),
                    "matches" => Ok(Pred::Str(StrOp::Matches, self.str_lit("a regular expression")?)),
                    "is" => {
                        let n = self.bump();
                        if kw(&n.tok, "null") {
                            return Ok(Pred::IsNull(false));
                        }
                        if kw(&n.tok, "not") {
                            self.expect_kw("null")?;
                            return Ok(Pred::IsNull(true));
                        }
                        self.err(&n, "expected 'null' or 'not null'")
                    }
                    "within" => Ok(Pred::Within(self.days()?)),
                    "before" => Ok(Pred::Before(self.str_lit("a date")?)),
                    "after" => Ok(Pred::After(self.str_lit("a date")?)),
                    _ => {
                        let mut msg = "expected an operator (=, !=, <, <=, >, >=, in, between, contains, is null, within, ...)".to_string();
                        if let Some(s) = did_you_mean(&w, PRED_WORDS) {
                            msg = format!("unknown operator '{w}': did you mean '{s}'?");
                        }
                        self.err(&t, &msg)
                    }
                }
            }
            Tok::Eof => self.err(&t, "expected an operator, the rule ends too early"),
            _ => {
                self.err(&t, "expected an operator (=, !=, <, <=, >, >=, in, between, contains, is null, within, ...)")
            }
        }
    }
}
