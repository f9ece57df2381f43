//! Unit tests of the segment engine.

use std::collections::HashMap;

use proptest::prelude::*;

use super::ast::{Expr, Lit, Operand, Pred};
use super::compile::{Plan, RuleSource};
use super::eval::{
    advance_clock, advance_clock_in_place, evaluate, exclusive, explain, row_member,
    update_contact, update_contact_journaled, Journal, RowUpdate,
};
use super::lexer::{lex, Tok};
use super::snapshot::{ColumnData, Interactions, Snapshot, Value};
use super::{parse, parse_datetime, FieldType, Schema, DAY};
use crate::CoreError;

fn schema() -> Schema {
    Schema::new(vec![
        ("country".into(), FieldType::String),
        ("age".into(), FieldType::Integer),
        ("spent".into(), FieldType::Number),
        ("active".into(), FieldType::Boolean),
        ("signed_up".into(), FieldType::Date),
        ("last_seen".into(), FieldType::Datetime),
        ("tags".into(), FieldType::List),
        ("email".into(), FieldType::String),
    ])
    .unwrap()
}

const T0: i64 = 1_767_225_600; // 2026-01-01

fn snap() -> Snapshot {
    let mut cols = HashMap::new();
    cols.insert(
        "country".into(),
        ColumnData::Str(vec![
            Some("US".into()),
            Some("CA".into()),
            None,
            Some("FR".into()),
        ]),
    );
    cols.insert(
        "age".into(),
        ColumnData::Int(vec![Some(30), Some(41), None, Some(18)]),
    );
    cols.insert(
        "spent".into(),
        ColumnData::Float(vec![Some(100.5), Some(0.0), None, Some(f64::NAN)]),
    );
    cols.insert(
        "active".into(),
        ColumnData::Bool(vec![Some(true), Some(false), None, Some(true)]),
    );
    cols.insert(
        "signed_up".into(),
        ColumnData::Int(vec![Some(T0 - 10 * DAY), Some(T0), None, Some(T0 + DAY)]),
    );
    cols.insert(
        "last_seen".into(),
        ColumnData::Int(vec![
            Some(T0 - 30 * DAY),
            Some(T0 - 30 * DAY - 1),
            None,
            Some(T0),
        ]),
    );
    cols.insert(
        "tags".into(),
        ColumnData::List(vec![
            Some(vec!["vip".into(), "new".into()]),
            Some(vec![]),
            None,
            Some(vec!["new".into()]),
        ]),
    );
    cols.insert(
        "email".into(),
        ColumnData::Str(vec![
            Some("ann@uni.edu".into()),
            Some("bob@x.com".into()),
            None,
            Some("joe@y.edu".into()),
        ]),
    );
    let inter = Interactions {
        contact: vec![10, 10, 10, 11, 13],
        kind: vec![
            "purchase".into(),
            "purchase".into(),
            "email_open".into(),
            "purchase".into(),
            "purchase".into(),
        ],
        time: vec![
            T0 - 90 * DAY,
            T0 - DAY,
            T0 - 14 * DAY,
            T0 - 91 * DAY,
            T0 + 1,
        ],
        amount: vec![Some(10.0), Some(30.0), None, Some(5.0), Some(100.0)],
    };
    Snapshot::new(vec![10, 11, 12, 13], schema(), cols, Some(inter)).unwrap()
}

fn members(rule: &str) -> Vec<u32> {
    let plan = Plan::compile(vec![("s".into(), RuleSource::Text(rule.into()))], schema()).unwrap();
    let s = snap();
    let r = evaluate(&plan, &s, T0).unwrap();
    let bulk: Vec<u32> = r.bitmaps[0].iter().collect();
    // The single-row path agrees with the bulk path.
    let rows: Vec<u32> = (0..4)
        .filter(|&i| row_member(&plan, &s, i as usize, 0, T0))
        .collect();
    assert_eq!(bulk, rows, "bulk and row evaluation disagree on {rule}");
    bulk
}

fn rule_err(rule: &str) -> String {
    match Plan::compile(vec![("s".into(), RuleSource::Text(rule.into()))], schema()) {
        Err(CoreError::Rule(m)) => m,
        other => panic!("expected a rule error for {rule}, got {other:?}"),
    }
}

#[test]
fn lexer_tokens() {
    let t = lex("age >= -3.5 and name = 'it\\'s' <> x").unwrap();
    let toks: Vec<Tok> = t.into_iter().map(|t| t.tok).collect();
    assert_eq!(
        toks,
        vec![
            Tok::Ident("age".into()),
            Tok::Op(">="),
            Tok::Num(-3.5),
            Tok::Ident("and".into()),
            Tok::Ident("name".into()),
            Tok::Op("="),
            Tok::Str("it's".into()),
            Tok::Op("!="),
            Tok::Ident("x".into()),
            Tok::Eof
        ]
    );
    assert_eq!(lex("'^\\+1'").unwrap()[0].tok, Tok::Str("^\\+1".into()));
    assert_eq!(lex("'a''b'").unwrap()[0].tok, Tok::Str("a'b".into()));
    assert!(lex("'open").is_err());
    assert!(lex("99999999999999999999").is_err());
}

#[test]
fn parser_shapes_and_case_insensitive_keywords() {
    let e = parse("(a = 1 OR b = 2) AND NOT c IS NULL").unwrap();
    match e {
        Expr::And(cs) => {
            assert!(matches!(cs[0], Expr::Or(_)));
            assert!(
                matches!(&cs[1], Expr::Not(inner) if matches!(**inner, Expr::Cond(_, Pred::IsNull(false))))
            );
        }
        other => panic!("{other:?}"),
    }
    let e = parse("sum(purchase.amount, 365 days) > 500").unwrap();
    assert_eq!(
        e,
        Expr::Cond(
            Operand::Agg {
                func: super::ast::AggFunc::Sum,
                kind: "purchase".into(),
                days: Some(365)
            },
            Pred::Cmp(">", Lit::Int(500))
        )
    );
    assert!(matches!(parse("in_segment('vip')").unwrap(), Expr::InSegment(n) if n == "vip"));
}

#[test]
fn error_positions_and_did_you_mean() {
    let m = rule_err("age > 3 and contry = 'US'");
    assert!(m.contains("unknown field 'contry'"), "{m}");
    assert!(m.contains("did you mean 'country'?"), "{m}");
    let caret_line = m.lines().last().unwrap();
    assert_eq!(caret_line, format!("  {}{}", " ".repeat(12), "^".repeat(6)));
    let m = rule_err("age > 3 adn country = 'US'");
    assert!(m.contains("did you mean 'and'?"), "{m}");
    assert!(
        m.lines()
            .last()
            .unwrap()
            .starts_with(&format!("  {}^", " ".repeat(8))),
        "{m}"
    );
    let m = rule_err("country betwen 1 and 2");
    assert!(m.contains("did you mean 'between'?"), "{m}");
    assert!(rule_err("(age > 3").contains("expected ')'"));
    assert!(rule_err("age > ").contains("expected a value"));
    assert!(rule_err("").contains("empty rule"));
}

#[test]
fn type_errors() {
    assert!(rule_err("country = 3")
        .contains("type error: 'country' is a string, but the value is a number"));
    assert!(rule_err("age = 'x'").contains("type error"));
    assert!(rule_err("age within 3 days").contains("'within' does not apply"));
    assert!(rule_err("country within 3 days").contains("'within' does not apply"));
    assert!(rule_err("signed_up > 3").contains("write dates as"));
    assert!(rule_err("signed_up before '2026-13-01'").contains("invalid date"));
    assert!(rule_err("tags = 'vip'").contains("a list supports"));
    assert!(rule_err("active > true").contains("does not apply"));
    assert!(rule_err("email matches '('").contains("invalid regular expression"));
    assert!(rule_err("count(purchase, 3 days) within 3 days").contains("does not apply"));
}

#[test]
fn operators() {
    assert_eq!(members("country = 'US'"), vec![0]);
    assert_eq!(members("country != 'US'"), vec![1, 3]);
    assert_eq!(members("country in ('US', 'CA')"), vec![0, 1]);
    assert_eq!(members("country not in ('US')"), vec![1, 3]);
    assert_eq!(members("country < 'D'"), vec![1]);
    assert_eq!(members("age >= 30"), vec![0, 1]);
    assert_eq!(members("age > 30.5"), vec![1]);
    assert_eq!(members("age = 30.0"), vec![0]);
    assert_eq!(members("age = 30.5"), Vec::<u32>::new());
    assert_eq!(members("age between 18 and 30"), vec![0, 3]);
    assert_eq!(members("age between 30 and 18"), Vec::<u32>::new());
    assert_eq!(members("age in (18, 41, 99.5)"), vec![1, 3]);
    assert_eq!(members("spent < 100.5"), vec![1]);
    assert_eq!(members("spent <= 100.5"), vec![0, 1]);
    assert_eq!(members("email ends_with '.edu'"), vec![0, 3]);
    assert_eq!(members("email starts_with 'bo'"), vec![1]);
    assert_eq!(members("email contains '@'"), vec![0, 1, 3]);
    assert_eq!(members("email matches '^[aj]'"), vec![0, 3]);
    assert_eq!(members("active = true"), vec![0, 3]);
    assert_eq!(members("active != true"), vec![1]);
    assert_eq!(members("tags contains 'vip'"), vec![0]);
    assert_eq!(members("tags in ('vip', 'new')"), vec![0, 3]);
    assert_eq!(members("tags not in ('vip')"), vec![1, 3]);
    assert_eq!(members("tags is null"), vec![2]);
    assert_eq!(members("spent is null"), vec![2, 3]);
    assert_eq!(members("signed_up before '2026-01-01'"), vec![0]);
    assert_eq!(members("signed_up after '2026-01-01'"), vec![3]);
    assert_eq!(members("signed_up >= '2026-01-01'"), vec![1, 3]);
    assert_eq!(members("last_seen after '2025-12-02T00:00:00Z'"), vec![3]);
}

#[test]
fn null_rule() {
    // Every predicate on a missing value is false; `not` negates the evaluated clause.
    assert_eq!(members("country != 'US'"), vec![1, 3]);
    assert_eq!(members("not country = 'US'"), vec![1, 2, 3]);
    assert_eq!(members("not (age > 30)"), vec![0, 2, 3]);
    assert_eq!(
        members("country is not null and not (country = 'US')"),
        vec![1, 3]
    );
    assert_eq!(members("tags not in ('zzz')"), vec![0, 1, 3]);
}

#[test]
fn windows_are_exact_at_their_edges() {
    // last_seen: row 0 exactly 30 days back (in), row 1 one second earlier (out), row 3 at as_of (in).
    assert_eq!(members("last_seen within 30 days"), vec![0, 3]);
    assert_eq!(members("last_seen within 0 days"), vec![3]);
    // purchases: row 0 at -90d and -1d; row 1 at -91d; row 3 in the future (ignored).
    assert_eq!(members("count(purchase, 90 days) >= 2"), vec![0]);
    assert_eq!(members("count(purchase, 91 days) >= 1"), vec![0, 1]);
    assert_eq!(members("count(purchase) = 0"), vec![2, 3]);
    assert_eq!(members("sum(purchase.amount, 365 days) = 40"), vec![0]);
    assert_eq!(members("sum(purchase.amount) = 0"), vec![2, 3]);
    assert_eq!(members("avg(purchase.amount) = 20"), vec![0]);
    assert_eq!(members("avg(purchase.amount) is null"), vec![2, 3]);
    assert_eq!(members("max(purchase.amount, 30 days) = 30"), vec![0]);
    assert_eq!(members("min(purchase.amount) <= 5"), vec![1]);
    assert_eq!(members("last(email_open) within 14 days"), vec![0]);
    assert_eq!(
        members("last(email_open) within 13 days"),
        Vec::<u32>::new()
    );
    assert_eq!(members("first(purchase) before '2025-10-04'"), vec![0, 1]);
    assert_eq!(members("last(purchase) is null"), vec![2, 3]);
}

#[test]
fn in_segment_and_cycles() {
    let plan = Plan::compile(
        vec![
            (
                "b".into(),
                RuleSource::Text("in_segment('a') and age > 20".into()),
            ),
            (
                "a".into(),
                RuleSource::Text("country in ('US', 'CA')".into()),
            ),
            ("c".into(), RuleSource::Text("not in_segment('b')".into())),
        ],
        schema(),
    )
    .unwrap();
    let r = evaluate(&plan, &snap(), T0).unwrap();
    assert_eq!(r.bitmaps[0].iter().collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(r.bitmaps[2].iter().collect::<Vec<_>>(), vec![2, 3]);
    let cyc = Plan::compile(
        vec![
            ("a".into(), RuleSource::Text("in_segment('b')".into())),
            (
                "b".into(),
                RuleSource::Text("age > 1 or in_segment('a')".into()),
            ),
        ],
        schema(),
    );
    assert!(matches!(cyc, Err(CoreError::Rule(m)) if m.contains("cycle")));
    let selfref = Plan::compile(
        vec![("a".into(), RuleSource::Text("in_segment('a')".into()))],
        schema(),
    );
    assert!(matches!(selfref, Err(CoreError::Rule(m)) if m.contains("cycle")));
    let unknown = Plan::compile(
        vec![
            ("vip".into(), RuleSource::Text("age > 1".into())),
            ("x".into(), RuleSource::Text("in_segment('vipp')".into())),
        ],
        schema(),
    );
    assert!(matches!(unknown, Err(CoreError::Rule(m)) if m.contains("did you mean 'vip'")));
}

#[test]
fn shared_subexpressions_are_interned() {
    let plan = Plan::compile(
        vec![
            (
                "a".into(),
                RuleSource::Text("age > 30 and country = 'US'".into()),
            ),
            (
                "b".into(),
                RuleSource::Text("country = 'US' and age >= 31".into()),
            ),
            (
                "c".into(),
                RuleSource::Text("not not (country in ('US'))".into()),
            ),
        ],
        schema(),
    )
    .unwrap();
    assert_eq!(plan.leaves.len(), 2);
    assert_eq!(plan.roots[0], plan.roots[1]);
    assert_eq!(plan.nodes_for(&[0, 1, 2]).len(), 3);
}

#[test]
fn determinism_across_thread_counts() {
    let n = 200_000usize;
    let ids: Vec<i64> = (0..n as i64).collect();
    let mut cols = HashMap::new();
    cols.insert(
        "age".into(),
        ColumnData::Int(
            (0..n)
                .map(|i| {
                    if i % 7 == 0 {
                        None
                    } else {
                        Some((i * 31 % 97) as i64)
                    }
                })
                .collect(),
        ),
    );
    cols.insert(
        "country".into(),
        ColumnData::Str(
            (0..n)
                .map(|i| Some(["US", "CA", "FR", "DE"][i * 13 % 4].to_string()))
                .collect(),
        ),
    );
    let s = Snapshot::new(ids, schema(), cols, None).unwrap();
    let plan = Plan::compile(
        vec![
            (
                "a".into(),
                RuleSource::Text("age > 50 and country in ('US', 'FR')".into()),
            ),
            (
                "b".into(),
                RuleSource::Text("not (age > 50) or age is null".into()),
            ),
        ],
        schema(),
    )
    .unwrap();
    let run = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| evaluate(&plan, &s, T0).unwrap())
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
    let expect = (0..n)
        .filter(|&i| i % 7 != 0 && (i * 31 % 97) > 50 && (i * 13 % 4) % 2 == 0)
        .count() as u64;
    assert_eq!(one.bitmaps[0].len(), expect);
    assert_eq!(
        one.bitmaps[1].len(),
        n as u64 - (0..n).filter(|&i| i % 7 != 0 && (i * 31 % 97) > 50).count() as u64
    );
}

#[test]
fn incremental_updates_match_full_runs() {
    let plan = Plan::compile(
        vec![
            ("us".into(), RuleSource::Text("country = 'US'".into())),
            (
                "buyers".into(),
                RuleSource::Text("count(purchase, 30 days) >= 2".into()),
            ),
            (
                "us_buyers".into(),
                RuleSource::Text("in_segment('us') and in_segment('buyers')".into()),
            ),
            (
                "young".into(),
                RuleSource::Text("age < 20 or tags contains 'kid'".into()),
            ),
        ],
        schema(),
    )
    .unwrap();
    let mut s = snap();
    let mut r = evaluate(&plan, &s, T0).unwrap();
    let upd = RowUpdate {
        values: vec![("country".into(), Value::Str("US".into()))],
        interactions: vec![],
    };
    let (ent, ext) = update_contact(&plan, &mut s, &mut r, 11, &upd).unwrap();
    assert_eq!((ent, ext), (vec![0], vec![]));
    let upd = RowUpdate {
        values: vec![],
        interactions: vec![
            ("purchase".into(), T0 - 2 * DAY, Some(1.0)),
            ("purchase".into(), T0, None),
        ],
    };
    let (ent, _) = update_contact(&plan, &mut s, &mut r, 11, &upd).unwrap();
    assert_eq!(ent, vec![1, 2]);
    let upd = RowUpdate {
        values: vec![
            ("tags".into(), Value::List(vec!["kid".into()])),
            ("country".into(), Value::Null),
        ],
        interactions: vec![],
    };
    let (ent, ext) = update_contact(&plan, &mut s, &mut r, 11, &upd).unwrap();
    assert_eq!((ent, ext), (vec![3], vec![0, 2]));
    let new = RowUpdate {
        values: vec![("age".into(), Value::Int(5))],
        interactions: vec![],
    };
    let (ent, _) = update_contact(&plan, &mut s, &mut r, 99, &new).unwrap();
    assert_eq!(ent, vec![3]);
    assert_eq!(r, evaluate(&plan, &s, T0).unwrap());
    // Moving the clock re-evaluates only the time-dependent segments, exactly.
    let later = advance_clock(&plan, &s, &r, T0 + 40 * DAY).unwrap();
    assert_eq!(later, evaluate(&plan, &s, T0 + 40 * DAY).unwrap());
    assert!(!plan.uses_clock[0] && plan.uses_clock[2]);
}

#[test]
fn explain_and_exclusive() {
    let plan = Plan::compile(
        vec![
            (
                "vip".into(),
                RuleSource::Text("age > 35 and (country = 'US' or not (spent > 1))".into()),
            ),
            ("us".into(), RuleSource::Text("country = 'US'".into())),
            ("any".into(), RuleSource::Text("age is not null".into())),
        ],
        schema(),
    )
    .unwrap();
    let s = snap();
    let e = explain(&plan, &s, 1, 0, T0);
    assert!(e.value);
    assert_eq!(e.children.len(), 2);
    assert!(e.children[0].value && e.children[0].text == "age > 35");
    let e2 = explain(&plan, &s, 2, 0, T0);
    assert!(!e2.value && e2.children[0].null);
    let labels = exclusive(&plan, &s, T0).unwrap();
    assert_eq!(labels, vec![Some(1), Some(0), None, Some(2)]);
}

#[test]
fn json_round_trip() {
    for rule in [
        "country = 'US' and (age >= 30 or tags contains 'vip') and not email is null",
        "count(purchase, 90 days) >= 3 and sum(purchase.amount, 365 days) > 500.5",
        "last(email_open) within 14 days or first('web visit') before '2025-01-01'",
        "in_segment('x') and age between 1 and 2 and country not in ('a', 'b''c')",
    ] {
        let e = parse(rule).unwrap();
        let j = e.to_json();
        assert_eq!(Expr::from_json(&j).unwrap(), e, "{rule}");
        assert_eq!(parse(&e.to_text()).unwrap(), e, "{rule}");
    }
}

#[test]
fn dates() {
    assert_eq!(parse_datetime("1970-01-01"), Some(0));
    assert_eq!(parse_datetime("2026-01-01"), Some(T0));
    assert_eq!(parse_datetime("2024-02-29T12:30:15Z"), Some(1_709_209_815));
    assert_eq!(parse_datetime("2023-02-29"), None);
    assert_eq!(parse_datetime("2023-02-2x"), None);
}

fn rule_strategy() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("country = 'US'".to_string()),
        Just("age >= 30".to_string()),
        Just("spent between 1.5 and 2e3".to_string()),
        Just("tags contains 'v\\'ip'".to_string()),
        Just("last_seen within 30 days".to_string()),
        Just("count(purchase, 90 days) >= 3".to_string()),
        Just("email is not null".to_string()),
        Just("country not in ('US', 'CA')".to_string()),
        Just("signed_up before '2026-01-01'".to_string()),
        Just("in_segment('other')".to_string()),
    ];
    leaf.prop_recursive(4, 32, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} OR {b}")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

proptest! {
    #[test]
    fn parser_never_panics(s in "\\PC{0,60}") {
        let _ = parse(&s);
    }

    #[test]
    fn parser_never_panics_on_rule_like_noise(s in "[a-z_ ()'=<>!,.0-9\\\\-]{0,60}") {
        let _ = parse(&s);
        let _ = Plan::compile(vec![("s".into(), RuleSource::Text(s))], schema());
    }

    #[test]
    fn text_tree_text_round_trips(rule in rule_strategy()) {
        let e = parse(&rule).unwrap();
        let text = e.to_text();
        let e2 = parse(&text).unwrap();
        prop_assert_eq!(&e2, &e);
        prop_assert_eq!(e2.to_text(), text);
        prop_assert_eq!(Expr::from_json(&e.to_json()).unwrap(), e);
    }
}

#[test]
fn hostile_inputs() {
    let deep = "(".repeat(100_000);
    assert!(parse(&deep).is_err());
    let nots = "not ".repeat(10_000) + "age > 1";
    assert!(parse(&nots).is_err());
    assert!(parse("'\\").is_err());
    assert!(parse("count(").is_err());
    assert!(parse("age > 1 )").is_err());
}

#[test]
fn clock_moves_match_full_runs() {
    // Many rows (over several event blocks), so that only a few hold a time
    // near a window edge and the clock move takes the gathered (incremental)
    // path; moves of a second, a day, backwards and across many days.
    let n = 140_000usize;
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rnd = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let ids: Vec<i64> = (0..n as i64).collect();
    let mut cols = HashMap::new();
    let col = |f: &mut dyn FnMut() -> Option<i64>| (0..n).map(|_| f()).collect::<Vec<_>>();
    let last_seen = col(&mut || (rnd(10) > 0).then(|| T0 - rnd(400 * DAY as u64) as i64));
    let signed = col(&mut || Some(T0 - rnd(1000) as i64 * DAY));
    cols.insert("last_seen".into(), ColumnData::Int(last_seen));
    cols.insert("signed_up".into(), ColumnData::Int(signed));
    cols.insert(
        "country".into(),
        ColumnData::Str(
            (0..n)
                .map(|i| Some(["US", "CA", "FR"][i % 3].into()))
                .collect(),
        ),
    );
    cols.insert(
        "email".into(),
        ColumnData::Str((0..n).map(|i| Some(format!("u{i}@x.io"))).collect()),
    );
    let mut it = Interactions::default();
    for c in 0..n as i64 {
        for _ in 0..rnd(4) {
            it.contact.push(c);
            it.kind
                .push(["purchase", "email_open"][rnd(2) as usize].to_string());
            it.time.push(T0 - rnd(200 * DAY as u64) as i64 + 2 * DAY);
            it.amount.push((rnd(3) > 0).then(|| rnd(100) as f64));
        }
    }
    let mut s = Snapshot::new(ids, schema(), cols, Some(it)).unwrap();
    let rules = [
        "last_seen within 7 days",
        "last_seen within 30 days and country = 'US'",
        "count(purchase, 30 days) >= 2 or signed_up within 90 days",
        "sum(purchase.amount, 60 days) > 100 and not (email matches '^u1' or email matches '7@')",
        "last(email_open) within 14 days",
        "first(purchase) before '2025-12-01' and count(email_open) >= 1",
        "avg(purchase.amount, 90 days) < 30",
        "in_segment('a') and not in_segment('c')",
        "country = 'CA'",
        "email ends_with '3@x.io' and last_seen within 30 days",
    ];
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    let plan = Plan::compile(
        names
            .iter()
            .zip(rules)
            .map(|(n, r)| (n.to_string(), RuleSource::Text(r.into())))
            .collect(),
        schema(),
    )
    .unwrap();
    let mut r = evaluate(&plan, &s, T0).unwrap();
    // The bulk kernels (per-kind time windows) agree with single-row
    // evaluation (per-row events) in every block.
    for row in (0..n).step_by(211) {
        for seg in 0..names.len() {
            assert_eq!(
                r.bitmaps[seg].contains(row as u32),
                row_member(&plan, &s, row, seg, T0),
                "row {row} segment {seg}"
            );
        }
    }
    // Interactions added by single-contact updates count too (in the first
    // and the last block, and on a new contact).
    for (id, t, a) in [
        (17, T0 + DAY / 2, Some(500.0)),
        (n as i64 - 3, T0 - 29 * DAY, Some(80.0)),
        (n as i64 - 3, T0 - 10 * DAY, None),
        (n as i64 + 5, T0 - DAY, Some(120.0)),
    ] {
        let upd = RowUpdate {
            values: vec![],
            interactions: vec![("purchase".into(), t, a)],
        };
        update_contact(&plan, &mut s, &mut r, id, &upd).unwrap();
    }
    // New emails grow the dictionary past the codes whose test bits the
    // first evaluation kept: they are tested when read.
    for (id, email) in [
        (3, "new13@x.io"),
        (70_001, "u17@y"),
        (n as i64 - 1, "zz3@x.io"),
    ] {
        let upd = RowUpdate {
            values: vec![
                ("email".into(), Value::Str(email.into())),
                ("last_seen".into(), Value::Int(T0 - 29 * DAY - 5)),
            ],
            interactions: vec![],
        };
        update_contact(&plan, &mut s, &mut r, id, &upd).unwrap();
    }
    assert_eq!(r, evaluate(&plan, &s, T0).unwrap());
    let mut t = T0;
    for step in [1, DAY, DAY, -DAY, 3 * DAY + 7, 45 * DAY, 0] {
        let next = advance_clock(&plan, &s, &r, t + step).unwrap();
        let full = evaluate(&plan, &s, t + step).unwrap();
        assert_eq!(next, full, "step {step}");
        // In place, with exact entered / exited rows.
        let mut moved = r.clone();
        let changes = advance_clock_in_place(&plan, &s, &mut moved, t + step).unwrap();
        assert_eq!(moved, full, "step {step}");
        let mut changed = vec![false; names.len()];
        for (seg, entered, exited) in changes {
            changed[seg] = true;
            assert_eq!(entered, &full.bitmaps[seg] - &r.bitmaps[seg]);
            assert_eq!(exited, &r.bitmaps[seg] - &full.bitmaps[seg]);
        }
        for (seg, &c) in changed.iter().enumerate() {
            assert_eq!(c, r.bitmaps[seg] != full.bitmaps[seg], "segment {seg}");
        }
        r = next;
        t += step;
    }
    for row in (0..s.len()).step_by(97).chain([3, 70_001, n - 1]) {
        for seg in 0..names.len() {
            assert_eq!(
                r.bitmaps[seg].contains(row as u32),
                row_member(&plan, &s, row, seg, t),
                "row {row} segment {seg} after the moves"
            );
        }
    }
}

/// A plan of `rules` named `s0`, `s1`, … in order.
fn numbered_plan(rules: &[&str]) -> Plan {
    Plan::compile(
        rules
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("s{i}"), RuleSource::Text((*r).into())))
            .collect(),
        schema(),
    )
    .unwrap()
}

fn all_rules_plan() -> Plan {
    let rules = [
        "country in ('US', 'CA') and age >= 30",
        "spent > 50 or active = true",
        "signed_up before '2026-01-02' and last_seen within 30 days",
        "tags contains 'vip' or tags is null",
        "email ends_with '.edu'",
        "count(purchase, 90 days) >= 2 and sum(purchase.amount) > 20",
        "last(email_open) within 14 days",
    ];
    numbered_plan(&rules)
}

fn temp_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("crmkit-snap-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn snapshots_survive_a_round_trip_through_a_file() {
    let plan = all_rules_plan();
    let mut s = snap();
    // Appended rows and events are kept too.
    let upd = RowUpdate {
        values: vec![("country".into(), Value::Str("CA".into()))],
        interactions: vec![("email_open".into(), T0 - DAY, None)],
    };
    let mut r = evaluate(&plan, &s, T0).unwrap();
    update_contact(&plan, &mut s, &mut r, 77, &upd).unwrap();
    let path = temp_file("round-trip.snap");
    s.save(&path, "{\"rev\": 7}").unwrap();
    let (back, meta) = Snapshot::load(&path).unwrap();
    assert_eq!(meta, "{\"rev\": 7}");
    assert_eq!(back.ids, s.ids);
    assert_eq!(back.row_of(77), Some(4));
    for t in [T0, T0 + 20 * DAY] {
        assert_eq!(
            evaluate(&plan, &back, t).unwrap(),
            evaluate(&plan, &s, t).unwrap()
        );
    }
    // Every damaged file is refused with an error, never a panic.
    let bytes = std::fs::read(&path).unwrap();
    for cut in [0, 7, 12, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        assert!(Snapshot::load(&path).is_err(), "cut at {cut}");
    }
    for i in (0..bytes.len()).step_by(7) {
        let mut bad = bytes.clone();
        bad[i] ^= 0x5a;
        std::fs::write(&path, &bad).unwrap();
        assert!(Snapshot::load(&path).is_err(), "flipped byte {i}");
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn upserts_match_a_fresh_build() {
    let plan = all_rules_plan();
    let mut s = snap();
    let mut cols = HashMap::new();
    cols.insert(
        "country".into(),
        ColumnData::Str(vec![Some("US".into()), None, Some("CA".into())]),
    );
    cols.insert("age".into(), ColumnData::Int(vec![Some(50), Some(3), None]));
    cols.insert(
        "tags".into(),
        ColumnData::List(vec![Some(vec!["vip".into()]), None, Some(vec![])]),
    );
    let many = 5000;
    let it = Interactions {
        contact: (0..many).map(|i| [11, 12, 40][i % 3]).collect(),
        kind: (0..many)
            .map(|i| ["purchase", "email_open"][i % 2].to_string())
            .collect(),
        time: (0..many).map(|i| T0 - (i as i64 % 100) * DAY).collect(),
        amount: (0..many).map(|i| (i % 5 > 0).then_some(i as f64)).collect(),
    };
    let added = s.upsert(&[12, 40, 10], cols, Some(it.clone())).unwrap();
    assert_eq!(added, 1);
    // The same data built in one go.
    let mut fresh = snap();
    let mut r = evaluate(&plan, &fresh, T0).unwrap();
    for (id, country, age, tags) in [
        (
            12,
            Value::Str("US".into()),
            Value::Int(50),
            Value::List(vec!["vip".into()]),
        ),
        (40, Value::Null, Value::Int(3), Value::Null),
        (
            10,
            Value::Str("CA".into()),
            Value::Null,
            Value::List(vec![]),
        ),
    ] {
        let upd = RowUpdate {
            values: vec![
                ("country".into(), country),
                ("age".into(), age),
                ("tags".into(), tags),
            ],
            interactions: vec![],
        };
        update_contact(&plan, &mut fresh, &mut r, id, &upd).unwrap();
    }
    for i in 0..many {
        let upd = RowUpdate {
            values: vec![],
            interactions: vec![(it.kind[i].clone(), it.time[i], it.amount[i])],
        };
        update_contact(&plan, &mut fresh, &mut r, it.contact[i], &upd).unwrap();
    }
    for t in [T0, T0 + 45 * DAY] {
        assert_eq!(
            evaluate(&plan, &s, t).unwrap(),
            evaluate(&plan, &fresh, t).unwrap(),
            "at {t}"
        );
    }
    // Many appended events were folded into the per-kind index.
    assert_eq!(s.events.extra_len(), 0);
    // Bad input is refused.
    let mut bad = HashMap::new();
    bad.insert("nope".into(), ColumnData::Int(vec![Some(1)]));
    assert!(s.upsert(&[10], bad, None).is_err());
    let mut short = HashMap::new();
    short.insert("age".into(), ColumnData::Int(vec![]));
    assert!(s.upsert(&[10], short, None).is_err());
    let orphan = Interactions {
        contact: vec![999],
        kind: vec!["purchase".into()],
        time: vec![T0],
        amount: vec![None],
    };
    assert!(s.upsert(&[], HashMap::new(), Some(orphan)).is_err());
}

#[test]
fn gathers_keep_every_row_s_events_across_blocks() {
    // Over several event blocks, so that one block's rows straddle two blocks
    // of the gathered snapshot; both the dense (scan) and the sparse path.
    let n = 3 * 65_536 + 100;
    let mut it = Interactions::default();
    for c in 0..n as i64 {
        for j in 0..(c % 3) {
            it.contact.push(c);
            it.kind
                .push(["purchase", "email_open"][(c + j) as usize % 2].to_string());
            it.time.push(T0 - (c * 7919 + j * 13) % 500 * DAY);
            it.amount.push((j > 0).then_some(j as f64));
        }
    }
    let s = Snapshot::new((0..n as i64).collect(), schema(), HashMap::new(), Some(it)).unwrap();
    // Amounts compare by their bits (NaN is a missing amount).
    let sorted = |v: Vec<super::snapshot::Event>| {
        let mut k: Vec<(u32, i64, u64)> = v
            .into_iter()
            .map(|e| (e.kind, e.time, e.amount.to_bits()))
            .collect();
        k.sort_unstable();
        k
    };
    for rows in [
        (0..n as u32).filter(|r| r % 5 != 0).collect::<Vec<u32>>(),
        (0..n as u32).step_by(97).collect(),
    ] {
        let g = s.gather(&rows);
        for (i, &r) in rows.iter().enumerate() {
            assert_eq!(
                sorted(g.events.of(i)),
                sorted(s.events.of(r as usize)),
                "row {r}"
            );
        }
        let purchases = s.events.kinds.code("purchase").unwrap() as usize;
        let mut only = vec![false; s.events.kinds.values.len()];
        only[purchases] = true;
        let g = s.gather_some(&rows, None, Some(&only));
        for (i, &r) in rows.iter().enumerate().step_by(5) {
            let want: Vec<_> = s
                .events
                .of(r as usize)
                .into_iter()
                .filter(|e| e.kind as usize == purchases)
                .collect();
            assert_eq!(sorted(g.events.of(i)), sorted(want), "row {r}");
        }
    }
}

#[test]
fn rows_appended_past_a_block_survive_a_round_trip() {
    let n = 65_530usize;
    let mut it = Interactions::default();
    for c in (0..n as i64).step_by(3) {
        it.contact.push(c);
        it.kind.push("purchase".into());
        it.time.push(T0 - c % 90 * DAY);
        it.amount.push(Some(c as f64));
    }
    let mut cols = HashMap::new();
    cols.insert(
        "age".into(),
        ColumnData::Int((0..n).map(|i| Some(i as i64 % 80)).collect()),
    );
    let mut s = Snapshot::new((0..n as i64).collect(), schema(), cols, Some(it)).unwrap();
    let mut more = HashMap::new();
    more.insert("age".into(), ColumnData::Int((0..20).map(Some).collect()));
    let new_ids: Vec<i64> = (0..20).map(|i| 1_000_000 + i).collect();
    let purchases = Interactions {
        contact: new_ids.clone(),
        kind: vec!["purchase".into(); 20],
        time: vec![T0 - DAY; 20],
        amount: vec![Some(5.0); 20],
    };
    assert_eq!(s.upsert(&new_ids, more, Some(purchases)).unwrap(), 20);
    let plan = Plan::compile(
        vec![(
            "s".into(),
            RuleSource::Text("age < 10 and count(purchase, 30 days) >= 1".into()),
        )],
        schema(),
    )
    .unwrap();
    let path = temp_file("appended.snap");
    s.save(&path, "").unwrap();
    let (back, _) = Snapshot::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let r = evaluate(&plan, &back, T0).unwrap();
    assert_eq!(r, evaluate(&plan, &s, T0).unwrap());
    assert!(r.bitmaps[0].contains(n as u32 + 3));
    // The per-row index (built on first use) agrees with the bulk path.
    for row in [0, 3, n - 1, n + 19] {
        assert_eq!(
            row_member(&plan, &back, row, 0, T0),
            r.bitmaps[0].contains(row as u32)
        );
    }
}

#[test]
fn integers_in_32_bits_and_beyond_compare_alike() {
    let big = 5_000_000_000i64;
    let plan = Plan::compile(
        vec![
            ("lo".into(), RuleSource::Text("age < 3000000000".into())),
            ("hi".into(), RuleSource::Text("age > 3000000000".into())),
            (
                "mid".into(),
                RuleSource::Text("age between -5 and 40".into()),
            ),
            ("neq".into(), RuleSource::Text("age != 30".into())),
            ("in".into(), RuleSource::Text("age in (30, 41)".into())),
        ],
        schema(),
    )
    .unwrap();
    let members = |s: &Snapshot| -> Vec<Vec<u32>> {
        let r = evaluate(&plan, s, T0).unwrap();
        // The single-row path agrees with the bulk path.
        for (seg, bm) in r.bitmaps.iter().enumerate() {
            for row in 0..s.len() {
                assert_eq!(bm.contains(row as u32), row_member(&plan, s, row, seg, T0));
            }
        }
        r.bitmaps.iter().map(|b| b.iter().collect()).collect()
    };
    let small = snap(); // ages 30, 41, null, 18: stored in 32 bits
    let want = members(&small);
    assert_eq!(want[0], vec![0, 1, 3]);
    assert!(want[1].is_empty());
    // The same ages plus one that needs 64 bits: the other rows agree.
    let mut s = snap();
    let row = s.push_contact(99).unwrap();
    s.set_value(row, "age", &Value::Int(big)).unwrap();
    let got = members(&s);
    assert_eq!(got[1], vec![row as u32]);
    assert_eq!(got[0], want[0]);
    assert_eq!(got[2], want[2]);
    // And through a file.
    let path = temp_file("wide.snap");
    s.save(&path, "").unwrap();
    let (back, _) = Snapshot::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(members(&back), got);
    let mut cols = HashMap::new();
    cols.insert(
        "age".into(),
        ColumnData::Int(vec![Some(-big), Some(30), None, Some(big)]),
    );
    let wide = Snapshot::new(vec![1, 2, 3, 4], schema(), cols, None).unwrap();
    assert_eq!(
        members(&wide),
        vec![vec![0, 1], vec![3], vec![1], vec![0, 3], vec![1]]
    );
}

#[test]
fn event_times_past_32_bits_count_alike() {
    // A far-future event makes its kind's times 64-bit; the other kind's
    // stay 32-bit; bulk, single-row, file and clock paths agree.
    let far = 5_000_000_000i64; // year 2128
    let n = 3000usize;
    let mut it = Interactions::default();
    for c in 0..n as i64 {
        for (kind, t) in [
            ("purchase", T0 - (c % 50) * DAY),
            ("email_open", T0 - (c % 20) * DAY),
        ] {
            it.contact.push(c);
            it.kind.push(kind.into());
            it.time.push(t);
            it.amount.push(Some(c as f64 % 7.0));
        }
    }
    it.contact.push(5);
    it.kind.push("purchase".into());
    it.time.push(far);
    it.amount.push(Some(1.0));
    let s = Snapshot::new((0..n as i64).collect(), schema(), HashMap::new(), Some(it)).unwrap();
    let plan = Plan::compile(
        vec![
            (
                "a".into(),
                RuleSource::Text("count(purchase, 10 days) >= 1".into()),
            ),
            (
                "b".into(),
                RuleSource::Text("last(email_open) within 5 days".into()),
            ),
            (
                "c".into(),
                RuleSource::Text("max(purchase.amount) >= 6".into()),
            ),
            (
                "d".into(),
                RuleSource::Text("first(purchase) before '2025-12-01'".into()),
            ),
        ],
        schema(),
    )
    .unwrap();
    let path = temp_file("far.snap");
    s.save(&path, "").unwrap();
    let (back, _) = Snapshot::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    for t in [T0, T0 + 3 * DAY, far + 1] {
        let r = evaluate(&plan, &s, t).unwrap();
        assert_eq!(r, evaluate(&plan, &back, t).unwrap());
        for row in (0..n).step_by(7).chain([5]) {
            for seg in 0..4 {
                assert_eq!(
                    r.bitmaps[seg].contains(row as u32),
                    row_member(&plan, &s, row, seg, t),
                    "row {row} segment {seg} at {t}"
                );
            }
        }
    }
    let mut r = evaluate(&plan, &s, T0).unwrap();
    advance_clock_in_place(&plan, &s, &mut r, T0 + DAY).unwrap();
    assert_eq!(r, evaluate(&plan, &s, T0 + DAY).unwrap());
    // At the far event's time, contact 5 bought within 10 days.
    assert!(evaluate(&plan, &s, far).unwrap().bitmaps[0].contains(5));
}

#[test]
fn sorted_find_agrees_with_binary_search() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for case in 0..200 {
        // Dense, gapped and wildly spread ids, negative ones too.
        let n = (next() % 3000) as usize;
        let mut ids = Vec::with_capacity(n);
        let mut id = (next() % 1000) as i64 - 500;
        for _ in 0..n {
            ids.push(id);
            id += match case % 4 {
                0 => 1,
                1 => 1 + (next() % 3) as i64,
                2 => 1 + (next() % 1_000_000) as i64,
                _ => 1 + (next() % (1 << 40)) as i64,
            };
        }
        for _ in 0..300 {
            let probe = if ids.is_empty() || next() % 2 == 0 {
                (next() % (1 << 42)) as i64 - (1 << 20)
            } else {
                ids[(next() as usize) % ids.len()] + (next() % 3) as i64 - 1
            };
            assert_eq!(
                super::snapshot::sorted_find(&ids, probe),
                ids.binary_search(&probe).ok(),
                "case {case} probe {probe}"
            );
        }
        for (r, &v) in ids.iter().enumerate() {
            assert_eq!(super::snapshot::sorted_find(&ids, v), Some(r));
        }
    }
}

#[test]
fn random_updates_of_every_field_kind_match_full_runs() {
    // Every kind of leaf (string, list, number, boolean, dates, nulls,
    // aggregates, in_segment, not) and every kind of change (new strings,
    // nulls, new contacts, interactions), with the entered / exited segments
    // of each update equal to the difference of full runs.
    let rules = [
        "country in ('US', 'CA') and age >= 30",
        "spent > 50 or active = true",
        "signed_up before '2026-01-02' and last_seen within 30 days",
        "tags contains 'vip' or tags is null",
        "email ends_with '.edu' or email matches '^a'",
        "count(purchase, 90 days) >= 2 and sum(purchase.amount) > 20",
        "last(email_open) within 14 days",
        "not (country = 'FR') and not in_segment('s0')",
        "in_segment('s1') or (age between 20 and 40 and tags not in ('new'))",
        "country is null or spent is not null",
        "max(purchase.amount, 30 days) > 40 or avg(purchase.amount) < 10",
    ];
    let plan = numbered_plan(&rules);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let mut s = snap();
    let mut r = evaluate(&plan, &s, T0).unwrap();
    let strs = [
        "US",
        "CA",
        "FR",
        "DE",
        "ann@a.edu",
        "zed@b.com",
        "vip",
        "new",
    ];
    for step in 0..600 {
        let mut upd = RowUpdate::default();
        for _ in 0..1 + next(2) {
            let null = next(6) == 0;
            let (f, v) = match next(9) {
                0 => ("country", Value::Str(strs[next(4) as usize].into())),
                1 => ("age", Value::Int(next(60) as i64)),
                2 => ("spent", Value::Float(next(120) as f64)),
                3 => ("active", Value::Bool(next(2) == 1)),
                4 => ("signed_up", Value::Int(T0 - next(5) as i64 * DAY)),
                5 => ("last_seen", Value::Int(T0 - next(60) as i64 * DAY)),
                6 => (
                    "tags",
                    Value::List(
                        (0..next(3))
                            .map(|_| strs[6 + next(2) as usize].into())
                            .collect(),
                    ),
                ),
                7 => (
                    "email",
                    Value::Str(if next(3) == 0 {
                        format!("a{step}@new.edu")
                    } else {
                        strs[4 + next(2) as usize].into()
                    }),
                ),
                _ => {
                    let kind = if next(2) == 0 {
                        "purchase"
                    } else {
                        "email_open"
                    };
                    let amount = (next(3) > 0).then(|| next(60) as f64);
                    upd.interactions
                        .push((kind.into(), T0 - next(100) as i64 * DAY, amount));
                    continue;
                }
            };
            upd.values
                .push((f.into(), if null { Value::Null } else { v }));
        }
        let id = if next(10) == 0 {
            100 + step as i64
        } else {
            [10, 11, 12, 13][next(4) as usize]
        };
        let prev = r.clone();
        let (ent, ext) = update_contact(&plan, &mut s, &mut r, id, &upd).unwrap();
        let full = evaluate(&plan, &s, T0).unwrap();
        assert_eq!(r, full, "step {step}");
        let row = s.row_of(id).unwrap() as u32;
        let want_ent: Vec<usize> = (0..rules.len())
            .filter(|&g| full.bitmaps[g].contains(row) && !prev.bitmaps[g].contains(row))
            .collect();
        let want_ext: Vec<usize> = (0..rules.len())
            .filter(|&g| !full.bitmaps[g].contains(row) && prev.bitmaps[g].contains(row))
            .collect();
        assert_eq!((ent, ext), (want_ent, want_ext), "step {step}");
    }
}

#[test]
fn regex_literal_prefixes_never_reject_a_match() {
    use super::eval::literal_prefix;
    assert_eq!(literal_prefix("^user5[0-9]*@").as_deref(), Some("user5"));
    assert_eq!(literal_prefix("^ab*c").as_deref(), Some("a"));
    assert_eq!(literal_prefix("^a?b"), None);
    assert_eq!(literal_prefix("^abc|x"), None);
    assert_eq!(literal_prefix("abc"), None);
    assert_eq!(literal_prefix("^(?i)abc"), None);
    assert_eq!(literal_prefix("^ab\\d").as_deref(), Some("ab"));
    assert_eq!(literal_prefix("^ab{2}").as_deref(), Some("a"));
    assert_eq!(literal_prefix("^ab.c").as_deref(), Some("ab"));
    // Random patterns and strings over a small alphabet: a string the regex
    // matches always starts with the prefix.
    let mut x: u64 = 0x1234_5678_9ABC_DEF1;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let atoms = ["a", "b", "1", "@", "-", ".", "[ab]", "(a|b)", "\\d", "x"];
    let quants = ["", "", "*", "?", "+", "{2}", "{0,2}"];
    for _ in 0..400 {
        let mut pat = String::from("^");
        for _ in 0..1 + next(5) {
            pat.push_str(atoms[next(atoms.len() as u64) as usize]);
            pat.push_str(quants[next(quants.len() as u64) as usize]);
        }
        let Ok(re) = regex::Regex::new(&pat) else {
            continue;
        };
        let prefix = literal_prefix(&pat);
        for _ in 0..200 {
            let s: String = (0..next(7))
                .map(|_| ['a', 'b', '1', '@', '-', 'x', 'y'][next(7) as usize])
                .collect();
            if re.is_match(&s) {
                if let Some(p) = &prefix {
                    assert!(s.starts_with(p.as_str()), "{pat} {s} {p}");
                }
            }
        }
    }
}

#[test]
fn large_dictionaries_answer_through_sorted_orders_as_a_scan_does() {
    // More distinct strings than `strindex::MIN_INDEXED`: prefix, suffix,
    // equality, comparison and anchored-regex leaves read the sorted orders.
    let n = super::strindex::MIN_INDEXED + 3000;
    let domains = ["uni.edu", "mail.com", "télé.fr", "日本.jp", ""];
    let email: Vec<Option<String>> = (0..n)
        .map(|i| match i % 97 {
            0 => None,
            1 => Some(String::new()),
            _ => Some(format!("user{i}@{}", domains[i % domains.len()])),
        })
        .collect();
    let mut cols = HashMap::new();
    cols.insert("email".to_string(), ColumnData::Str(email));
    let mut s = Snapshot::new((0..n as i64).collect(), schema(), cols, None).unwrap();
    let rules = [
        "email ends_with '.edu'",
        "email ends_with 'é.fr'",
        "email ends_with ''",
        "email ends_with '@'",
        "email starts_with 'user12'",
        "email starts_with ''",
        "email = 'user5@mail.com'",
        "email = ''",
        "email in ('user7@uni.edu', 'nobody', 'user9@日本.jp')",
        "email not in ('user7@uni.edu', '')",
        "email != 'user3@télé.fr'",
        "email < 'user2'",
        "email >= 'user65'",
        "email matches '^user4[0-9]*@'",
        "email matches '\\.jp$'",
        "email matches '^user1.*\\.edu$'",
        "email matches 'er1[0-9]@'",
        "not email ends_with '.com'",
    ];
    let plan = numbered_plan(&rules);
    let check = |s: &Snapshot, res: &super::eval::EvalResult| {
        for (seg, bm) in res.bitmaps.iter().enumerate() {
            for row in 0..s.len() {
                assert_eq!(
                    bm.contains(row as u32),
                    row_member(&plan, s, row, seg, T0),
                    "{} row {row}",
                    rules[seg]
                );
            }
        }
    };
    // A full evaluation scans (and the dictionary keeps each test's bits);
    // a preview builds the sorted orders; later evaluations read them.
    let scanned = evaluate(&plan, &s, T0).unwrap();
    check(&s, &scanned);
    let dict = match &s.columns[7].as_ref().unwrap().store {
        super::snapshot::Store::Str { dict, .. } => dict.clone(),
        _ => unreachable!(),
    };
    assert!(dict.tested("EndsWith(\".edu\")").is_some());
    assert_eq!(evaluate(&plan, &s, T0).unwrap(), scanned);
    dict.forget_tested();
    let names: Vec<String> = plan.names.clone();
    let previewed = super::eval::evaluate_named(&plan, &s, T0, &names).unwrap();
    assert_eq!(previewed.bitmaps, scanned.bitmaps);
    assert!(dict.sorted_if_built(false).is_some() && dict.sorted_if_built(true).is_some());
    dict.forget_tested();
    let mut res = evaluate(&plan, &s, T0).unwrap();
    assert_eq!(res, scanned);
    // Each rule alone (a lone regex is not part of a shared regex set).
    for (seg, r) in rules.iter().enumerate() {
        let one = Plan::compile(
            vec![("x".into(), RuleSource::Text(r.to_string()))],
            schema(),
        )
        .unwrap();
        let got = super::eval::evaluate_named(&one, &s, T0, &["x".to_string()]).unwrap();
        assert_eq!(got.bitmaps[0], res.bitmaps[seg], "{r}");
    }
    // Strings interned after the orders were built, and after the bits were
    // kept, are tested one by one.
    for (i, v) in ["zz@x.edu", "user4x@", "", "user12@日本.jp"]
        .iter()
        .enumerate()
    {
        let upd = RowUpdate {
            values: vec![("email".into(), Value::Str(v.to_string()))],
            interactions: vec![],
        };
        update_contact(&plan, &mut s, &mut res, (i * 7) as i64, &upd).unwrap();
        update_contact(&plan, &mut s, &mut res, (n + i) as i64, &upd).unwrap();
    }
    let fresh = evaluate(&plan, &s, T0).unwrap();
    assert_eq!(fresh, res);
    check(&s, &fresh);
    let again = super::eval::evaluate_named(&plan, &s, T0, &names).unwrap();
    assert_eq!(again.bitmaps, fresh.bitmaps);
}

#[test]
fn list_previews_read_postings_kept_up_to_date() {
    let mut x: u64 = 0x0BAD_5EED_1234_5678;
    let mut rnd = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let items = ["vip", "gold", "", "été", "日本", "vip"];
    let n = 70_000usize;
    let tags: Vec<Option<Vec<String>>> = (0..n)
        .map(|_| {
            (rnd(10) > 0).then(|| {
                (0..rnd(6))
                    .map(|_| items[rnd(items.len() as u64) as usize].to_string())
                    .collect()
            })
        })
        .collect();
    let mut cols = HashMap::new();
    cols.insert("tags".to_string(), ColumnData::List(tags));
    let mut s = Snapshot::new((0..n as i64).collect(), schema(), cols, None).unwrap();
    let rules = [
        "tags contains 'vip'",
        "tags contains ''",
        "tags in ('été', '日本')",
        "tags not in ('vip', 'gold')",
        "not tags contains 'gold'",
        "tags contains 'new' or tags is null",
    ];
    let plan = numbered_plan(&rules);
    let names = plan.names.clone();
    let mut res = evaluate(&plan, &s, T0).unwrap();
    let previewed = super::eval::evaluate_named(&plan, &s, T0, &names).unwrap();
    assert_eq!(previewed.bitmaps, res.bitmaps);
    let tags_col = s.columns[6].as_ref().unwrap();
    assert!(tags_col.postings_if_built().is_some());
    for step in 0..300 {
        let v = match rnd(4) {
            0 => Value::Null,
            1 => Value::List(vec![]),
            _ => Value::List(
                (0..rnd(4))
                    .map(|_| ["vip", "new", "gold", "日本", ""][rnd(5) as usize].to_string())
                    .collect(),
            ),
        };
        let upd = RowUpdate {
            values: vec![("tags".into(), v)],
            interactions: vec![],
        };
        let id = if step % 50 == 0 {
            (n + step) as i64
        } else {
            rnd(n as u64) as i64
        };
        update_contact(&plan, &mut s, &mut res, id, &upd).unwrap();
    }
    let fresh = evaluate(&plan, &s, T0).unwrap();
    assert_eq!(fresh, res);
    let previewed = super::eval::evaluate_named(&plan, &s, T0, &names).unwrap();
    assert_eq!(previewed.bitmaps, fresh.bitmaps);
}

#[test]
fn journaled_updates_and_clock_moves_match_full_runs() {
    // Single-contact updates whose flips wait in a journal (applied at
    // random points, the same row often flipping several times before),
    // interleaved with clock moves, over an email dictionary larger than the
    // transposed limit (its leaves resolved in parallel, then grown) and an
    // integer column that outgrows 32 bits: after every step the result
    // equals a full run, and each update's entered / exited segments are
    // the difference of full runs.
    let n = 70_000usize;
    let ids: Vec<i64> = (0..n as i64).collect();
    let mut cols = HashMap::new();
    cols.insert(
        "email".into(),
        ColumnData::Str(
            (0..n)
                .map(|i| (i % 17 != 0).then(|| format!("u{i}@{}", ["a.edu", "b.com"][i % 2])))
                .collect(),
        ),
    );
    cols.insert(
        "age".into(),
        ColumnData::Int(
            (0..n)
                .map(|i| (i % 11 != 0).then_some((i % 80) as i64))
                .collect(),
        ),
    );
    cols.insert(
        "last_seen".into(),
        ColumnData::Int((0..n).map(|i| Some(T0 - (i % 50) as i64 * DAY)).collect()),
    );
    cols.insert(
        "spent".into(),
        ColumnData::Float(
            (0..n)
                .map(|i| (i % 7 != 0).then_some((i % 300) as f64))
                .collect(),
        ),
    );
    let inter = Interactions {
        contact: (0..n as i64).step_by(3).collect(),
        kind: vec!["purchase".into(); n.div_ceil(3)],
        time: (0..n.div_ceil(3))
            .map(|i| T0 - (i % 40) as i64 * DAY)
            .collect(),
        amount: (0..n.div_ceil(3)).map(|i| Some((i % 90) as f64)).collect(),
    };
    let mut s = Snapshot::new(ids, schema(), cols, Some(inter)).unwrap();
    let rules = [
        "email ends_with '.edu' and age >= 30",
        "email matches '^u1' or spent between 10 and 50.5",
        "last_seen within 10 days and not (spent > 200)",
        "count(purchase, 20 days) >= 1 or age is null",
        "in_segment('s0') and last_seen within 30 days",
        "tags contains 'vip' or email starts_with 'new'",
        "age < 2147483648 and email is not null",
    ];
    let plan = numbered_plan(&rules);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let mut r = evaluate(&plan, &s, T0).unwrap();
    let mut journal = Journal::default();
    // Full runs as the updates see them (flips applied or not).
    let mut truth = r.clone();
    let mut t = T0;
    for step in 0..400 {
        if next(25) == 0 {
            journal.apply(&mut r);
            assert_eq!(r, truth, "step {step}");
            let dt = [DAY, -DAY, 3 * DAY, 1][next(4) as usize];
            advance_clock_in_place(&plan, &s, &mut r, t + dt).unwrap();
            t += dt;
            truth = evaluate(&plan, &s, t).unwrap();
            assert_eq!(r, truth, "clock move at step {step}");
            continue;
        }
        let id = next(50) as i64 * 7 + (step % 2) as i64 * n as i64;
        let (f, v) = match next(6) {
            0 => (
                "email",
                Value::Str(match next(3) {
                    0 => format!("new{step}@c.edu"),
                    1 => format!("u1{}@b.com", next(90)),
                    _ => format!("u{}@a.edu", next(n as u64)),
                }),
            ),
            1 => ("age", Value::Int(next(90) as i64)),
            2 => ("age", Value::Int(1 << 33)),
            3 => ("spent", Value::Float(next(400) as f64 / 2.0)),
            4 => ("last_seen", Value::Int(t - next(40) as i64 * DAY)),
            _ => ("email", Value::Null),
        };
        let upd = RowUpdate {
            values: vec![(f.into(), v)],
            interactions: if next(4) == 0 {
                vec![("purchase".into(), t - next(30) as i64 * DAY, Some(5.0))]
            } else {
                vec![]
            },
        };
        let prev = truth.clone();
        update_contact_journaled(&plan, &mut s, &r, &mut journal, id, &upd).unwrap();
        truth = evaluate(&plan, &s, t).unwrap();
        let row = s.row_of(id).unwrap() as u32;
        let want = |enter: bool| -> Vec<usize> {
            (0..rules.len())
                .filter(|&g| {
                    let (now, was) = (
                        truth.bitmaps[g].contains(row),
                        prev.bitmaps[g].contains(row),
                    );
                    now != was && now == enter
                })
                .collect()
        };
        assert_eq!(
            (journal.entered.clone(), journal.exited.clone()),
            (want(true), want(false)),
            "step {step}"
        );
        if next(5) == 0 {
            journal.apply(&mut r);
            assert!(journal.is_empty());
            assert_eq!(r, truth, "step {step}");
        }
    }
    journal.apply(&mut r);
    assert_eq!(r, evaluate(&plan, &s, t).unwrap());
}

#[test]
fn updates_over_random_nested_rules_match_full_runs() {
    // Random nested rules sharing clauses and sub-trees, segments of
    // segments, segments with the same rule (one root node for several
    // segments) and segments that only name another, over updates that add
    // strings to the dictionaries: each update must find exactly the
    // segments a full run finds moved.
    let mut x: u64 = 0xD1B5_4A32_D192_ED03;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    for round in 0..12 {
        let clauses = [
            "country = 'US'",
            "country in ('CA', 'FR')",
            "age >= 30",
            "age between 20 and 40",
            "spent > 50",
            "active = true",
            "tags contains 'vip'",
            "tags is null",
            "email ends_with '.edu'",
            "last_seen within 30 days",
            "count(purchase, 90 days) >= 2",
            "country is null",
            "tags not in ('vip', 'new')",
            "country not in ('US')",
            "tags in ('new', 'DE')",
        ];
        let mut rules: Vec<String> = Vec::new();
        for i in 0..2 + next(14) as usize {
            let rule = match next(8) {
                0 if i > 0 => rules[next(i as u64) as usize].clone(),
                1 if i > 0 => format!("in_segment('s{}')", next(i as u64)),
                _ => {
                    fn tree(
                        next: &mut dyn FnMut(u64) -> u64,
                        clauses: &[&str],
                        i: usize,
                        depth: u32,
                    ) -> String {
                        match if depth == 0 { 0 } else { next(5) } {
                            0 if i > 0 && next(6) == 0 => {
                                format!("in_segment('s{}')", next(i as u64))
                            }
                            0 => clauses[next(clauses.len() as u64) as usize].to_string(),
                            1 => format!("not ({})", tree(next, clauses, i, depth - 1)),
                            k => {
                                let op = if k == 2 { "and" } else { "or" };
                                let parts: Vec<String> = (0..2 + next(3))
                                    .map(|_| format!("({})", tree(next, clauses, i, depth - 1)))
                                    .collect();
                                parts.join(&format!(" {op} "))
                            }
                        }
                    }
                    tree(&mut next, &clauses, i, 3)
                }
            };
            rules.push(rule);
        }
        let refs: Vec<&str> = rules.iter().map(String::as_str).collect();
        let plan = numbered_plan(&refs);
        let mut s = snap();
        let mut r = evaluate(&plan, &s, T0).unwrap();
        for step in 0..150 {
            let mut upd = RowUpdate::default();
            for _ in 0..1 + next(2) {
                let (f, v) = match next(8) {
                    0 => (
                        "country",
                        Value::Str(["US", "CA", "FR", "DE"][next(4) as usize].into()),
                    ),
                    1 => ("age", Value::Int(next(60) as i64)),
                    2 => ("spent", Value::Float(next(120) as f64)),
                    3 => ("active", Value::Bool(next(2) == 1)),
                    4 => ("last_seen", Value::Int(T0 - next(60) as i64 * DAY)),
                    5 => (
                        "tags",
                        Value::List((0..next(3)).map(|_| "vip".into()).collect()),
                    ),
                    6 => (
                        "email",
                        Value::Str(["a@b.edu", "c@d.com"][next(2) as usize].into()),
                    ),
                    _ => {
                        upd.interactions.push((
                            "purchase".into(),
                            T0 - next(120) as i64 * DAY,
                            None,
                        ));
                        continue;
                    }
                };
                let v = if next(7) == 0 { Value::Null } else { v };
                upd.values.push((f.into(), v));
            }
            let id = if next(12) == 0 {
                1000 + step as i64
            } else {
                [10, 11, 12, 13][next(4) as usize]
            };
            let prev = r.clone();
            let (ent, ext) = update_contact(&plan, &mut s, &mut r, id, &upd).unwrap();
            let full = evaluate(&plan, &s, T0).unwrap();
            assert_eq!(r, full, "round {round} step {step}: {rules:?}");
            let row = s.row_of(id).unwrap() as u32;
            let moved = |enter: bool| -> Vec<usize> {
                (0..rules.len())
                    .filter(|&g| {
                        let (now, was) =
                            (full.bitmaps[g].contains(row), prev.bitmaps[g].contains(row));
                        now != was && now == enter
                    })
                    .collect()
            };
            assert_eq!(
                (ent, ext),
                (moved(true), moved(false)),
                "round {round} step {step}"
            );
        }
    }
}

#[test]
fn codes_widen_as_dictionaries_grow_past_a_byte_and_two() {
    // Codes start in a byte per row; updates that add the 257th and the
    // 65,537th string, and a list longer than 255 items, widen the column
    // in place. Updates, full runs and a file round trip agree throughout.
    use super::snapshot::Store;
    let rules = [
        "country = 'c69999'",
        "country starts_with 'c1' and not (country = 'US')",
        "country in ('US', 'c300', 'c65600')",
        "tags contains 't298'",
        "tags in ('t5', 't399') or tags is null",
    ];
    let plan = numbered_plan(&rules);
    let widths = |s: &Snapshot| {
        let w = |c: usize| match &s.columns[c].as_ref().unwrap().store {
            Store::Str { codes, .. } => (codes.width(), 0),
            Store::List { len, codes, .. } => (codes.width(), len.width()),
            _ => unreachable!(),
        };
        (w(0), w(6))
    };
    let mut s = snap();
    assert_eq!(widths(&s), ((1, 0), (1, 1)));
    let mut r = evaluate(&plan, &s, T0).unwrap();
    let ids = [10, 11, 12, 13];
    for step in 0..70_000usize {
        let mut values = vec![("country".into(), Value::Str(format!("c{step}")))];
        if step < 400 {
            let n = if step == 399 { 300 } else { 3 };
            let tags = (0..n).map(|k| format!("t{}", (step + k) % 400)).collect();
            values.push(("tags".into(), Value::List(tags)));
        }
        let upd = RowUpdate {
            values,
            interactions: vec![],
        };
        update_contact(&plan, &mut s, &mut r, ids[step % 4], &upd).unwrap();
        if [255, 256, 300, 399, 65_535, 65_536, 65_600, 69_999].contains(&step) {
            assert_eq!(r, evaluate(&plan, &s, T0).unwrap(), "step {step}");
        }
    }
    assert_eq!(widths(&s), ((4, 0), (2, 2)));
    let members: Vec<Vec<u32>> = r.bitmaps.iter().map(|b| b.iter().collect()).collect();
    assert_eq!(members[0], [3]);
    assert_eq!(members[3], [3]);
    let path = temp_file("widened.snap");
    s.save(&path, "").unwrap();
    let (back, _) = Snapshot::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(widths(&back), widths(&s));
    assert_eq!(evaluate(&plan, &back, T0).unwrap(), r);
    // A gathered snapshot keeps each column's width.
    let g = s.gather(&[3, 1]);
    assert_eq!(widths(&g), widths(&s));
    let rg = evaluate(&plan, &g, T0).unwrap();
    for (a, b) in rg.bitmaps.iter().zip(&r.bitmaps) {
        assert_eq!(
            (a.contains(0), a.contains(1)),
            (b.contains(3), b.contains(1))
        );
    }
}

#[test]
fn string_offsets_take_64_bits_only_past_4_gib() {
    use super::snapshot::{Ends, Strs};
    let mut e = Ends::default();
    e.push(7);
    assert_eq!(e, Ends::W32(vec![7]));
    e.push(u32::MAX as u64 + 5);
    assert_eq!(e, Ends::W64(vec![7, u32::MAX as u64 + 5]));
    for ends in [Ends::W32(vec![1, 3]), Ends::W64(vec![1, 3])] {
        let s = Strs::from_parts(ends, b"abc".to_vec()).unwrap();
        assert_eq!((s.get(0), s.get(1)), ("a", "bc"));
    }
    assert!(Strs::from_parts(Ends::W64(vec![3, 1]), b"abc".to_vec()).is_none());
}
