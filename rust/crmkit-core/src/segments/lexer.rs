//! Tokenizer for the rule language. Every token carries its byte span.

use crate::CoreResult;

use super::rule_error;

/// A token kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A name: a field, a keyword or a function (letters, digits, `_`, `.`).
    Ident(String),
    /// A single-quoted string literal, unescaped.
    Str(String),
    /// An integer literal.
    Int(i64),
    /// A decimal literal.
    Num(f64),
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `,`
    Comma,
    /// A comparison operator: `=`, `!=`, `<`, `<=`, `>`, `>=` (`==` and `<>` are accepted).
    Op(&'static str),
    /// End of input.
    Eof,
}

/// A token with its byte span in the rule text.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// What the token is.
    pub tok: Tok,
    /// Byte offset of its first character.
    pub start: usize,
    /// Byte offset just past it.
    pub end: usize,
}

/// Split a rule into tokens, ending with [`Tok::Eof`].
pub fn lex(text: &str) -> CoreResult<Vec<Token>> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let pos = |i: usize| chars.get(i).map_or(text.len(), |&(p, _)| p);
    while i < chars.len() {
        let (start, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let single = |tok: Tok| Token {
            tok,
            start,
            end: start + c.len_utf8(),
        };
        match c {
            '(' => {
                out.push(single(Tok::LParen));
                i += 1;
            }
            ')' => {
                out.push(single(Tok::RParen));
                i += 1;
            }
            ',' => {
                out.push(single(Tok::Comma));
                i += 1;
            }
            '=' | '!' | '<' | '>' => {
                let next = at(i + 1);
                let (op, len) = match (c, next) {
                    ('=', Some('=')) => ("=", 2),
                    ('=', _) => ("=", 1),
                    ('!', Some('=')) => ("!=", 2),
                    ('<', Some('=')) => ("<=", 2),
                    ('<', Some('>')) => ("!=", 2),
                    ('<', _) => ("<", 1),
                    ('>', Some('=')) => (">=", 2),
                    ('>', _) => (">", 1),
                    _ => {
                        return Err(rule_error(
                            text,
                            start,
                            start + 1,
                            "unexpected character '!' (did you mean '!='?)",
                        ))
                    }
                };
                out.push(Token {
                    tok: Tok::Op(op),
                    start,
                    end: pos(i + len),
                });
                i += len;
            }
            '\'' => {
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    match at(j) {
                        None => {
                            return Err(rule_error(
                                text,
                                start,
                                text.len(),
                                "unterminated string literal",
                            ));
                        }
                        Some('\'') if at(j + 1) == Some('\'') => {
                            s.push('\'');
                            j += 2;
                        }
                        Some('\'') => {
                            j += 1;
                            break;
                        }
                        Some('\\') => {
                            match at(j + 1) {
                                Some('\'') => s.push('\''),
                                Some('\\') => s.push('\\'),
                                Some('n') => s.push('\n'),
                                Some('t') => s.push('\t'),
                                Some('r') => s.push('\r'),
                                Some(other) => {
                                    s.push('\\');
                                    s.push(other);
                                }
                                None => {
                                    return Err(rule_error(
                                        text,
                                        start,
                                        text.len(),
                                        "unterminated string literal",
                                    ));
                                }
                            }
                            j += 2;
                        }
                        Some(ch) => {
                            s.push(ch);
                            j += 1;
                        }
                    }
                }
                out.push(Token {
                    tok: Tok::Str(s),
                    start,
                    end: pos(j),
                });
                i = j;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '.')
                    && at(i + 1).is_some_and(|n| n.is_ascii_digit() || (c == '-' && n == '.'))) =>
            {
                let mut j = i + 1;
                let mut is_float = c == '.';
                while let Some(ch) = at(j) {
                    if ch.is_ascii_digit() {
                        j += 1;
                    } else if ch == '.' && !is_float {
                        is_float = true;
                        j += 1;
                    } else if (ch == 'e' || ch == 'E')
                        && (at(j + 1).is_some_and(|n| n.is_ascii_digit())
                            || (matches!(at(j + 1), Some('+') | Some('-'))
                                && at(j + 2).is_some_and(|n| n.is_ascii_digit())))
                    {
                        is_float = true;
                        j += 2;
                    } else {
                        break;
                    }
                }
                if at(j).is_some_and(|n| n.is_alphanumeric() || n == '_') {
                    return Err(rule_error(text, start, pos(j + 1), "malformed number"));
                }
                let lit = &text[start..pos(j)];
                let tok = if is_float {
                    match lit.parse::<f64>() {
                        Ok(v) if v.is_finite() => Tok::Num(v),
                        _ => return Err(rule_error(text, start, pos(j), "number out of range")),
                    }
                } else {
                    match lit.parse::<i64>() {
                        Ok(v) => Tok::Int(v),
                        Err(_) => {
                            return Err(rule_error(text, start, pos(j), "integer out of range"))
                        }
                    }
                };
                out.push(Token {
                    tok,
                    start,
                    end: pos(j),
                });
                i = j;
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut j = i + 1;
                while let Some(ch) = at(j) {
                    if ch.is_alphanumeric()
                        || ch == '_'
                        || (ch == '.' && at(j + 1).is_some_and(|n| n.is_alphanumeric() || n == '_'))
                    {
                        j += 1;
                    } else {
                        break;
                    }
                }
                out.push(Token {
                    tok: Tok::Ident(text[start..pos(j)].to_string()),
                    start,
                    end: pos(j),
                });
                i = j;
            }
            '"' => {
                return Err(rule_error(
                    text,
                    start,
                    start + 1,
                    "strings use single quotes ('...')",
                ));
            }
            _ => {
                return Err(rule_error(
                    text,
                    start,
                    start + c.len_utf8(),
                    &format!("unexpected character {c:?}"),
                ));
            }
        }
    }
    out.push(Token {
        tok: Tok::Eof,
        start: text.len(),
        end: text.len(),
    });
    Ok(out)
}
