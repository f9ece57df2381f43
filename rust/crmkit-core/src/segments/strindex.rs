//! Sorted orders of a string dictionary, for answering prefix, suffix,
//! equality and comparison predicates on a large dictionary without testing
//! every string: the codes sorted by the bytes of their strings (a prefix is
//! a contiguous run) and by their reversed bytes (a suffix is a contiguous
//! run). A regex with a literal prefix or suffix runs only on that run.

use std::cmp::Ordering;

use rayon::prelude::*;

use super::snapshot::Strs;
use super::typecheck::StrPred;

/// Dictionaries from this size on are answered through their sorted orders.
pub const MIN_INDEXED: usize = 1 << 16;

/// A dictionary's codes in sorted order, forward or by reversed bytes. It
/// covers the codes below its length; codes added later are tested one by one.
#[derive(Debug, Clone, Default)]
pub struct SortedCodes {
    /// Codes in order.
    pub order: Vec<u32>,
    /// True when ordered by reversed bytes.
    pub reversed: bool,
}

/// Bytes `off..off + 24` of `s` (forward), or of `s` read backwards from its
/// end (reversed), big-endian and zero-padded: ordering by it never
/// contradicts ordering by the bytes.
#[inline]
fn key24(s: &[u8], reversed: bool, off: usize) -> Key {
    let mut b = [0u8; 24];
    if s.len() > off {
        if reversed {
            for (d, &x) in b.iter_mut().zip(s[..s.len() - off].iter().rev()) {
                *d = x;
            }
        } else {
            let k = (s.len() - off).min(24);
            b[..k].copy_from_slice(&s[off..off + k]);
        }
    }
    let word = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    (word(0), word(8), word(16))
}

/// A sort key: 24 bytes of a string, as three words (with a code, 32 bytes
/// an entry).
type Key = (u64, u64, u64);
const _: () = assert!(std::mem::size_of::<(Key, u32)>() == 32);

/// Order each run of equal keys by the next 24 bytes, level by level (each
/// string is read once per level, in sequence, instead of compared whole
/// over and over); strings that end with equal keys all along differ only
/// in trailing zero bytes, and the shorter comes first.
fn refine(keyed: &mut [(Key, u32)], values: &Strs, reversed: bool, off: usize) {
    let runs: Vec<&mut [(Key, u32)]> = keyed
        .chunk_by_mut(|a, b| a.0 == b.0)
        .filter(|r| r.len() > 1)
        .collect();
    runs.into_par_iter().for_each(|run| {
        if run.iter().all(|&(_, c)| values[c as usize].len() <= off) {
            run.sort_unstable_by_key(|&(_, c)| (values[c as usize].len(), c));
            return;
        }
        for e in run.iter_mut() {
            e.0 = key24(values[e.1 as usize].as_bytes(), reversed, off);
        }
        run.sort_unstable();
        refine(run, values, reversed, off + 24);
    });
}

/// Byte order of `a` and `b`, read backwards when `reversed`.
#[inline]
fn cmp_bytes(a: &[u8], b: &[u8], reversed: bool) -> Ordering {
    if reversed {
        a.iter().rev().cmp(b.iter().rev())
    } else {
        a.cmp(b)
    }
}

impl SortedCodes {
    /// Sort the codes of `values` (in parallel).
    pub fn build(values: &Strs, reversed: bool) -> SortedCodes {
        let n = values.len();
        let mut keyed: Vec<(Key, u32)> = (0..n)
            .into_par_iter()
            .map(|c| (key24(values[c].as_bytes(), reversed, 0), c as u32))
            .collect();
        keyed.par_sort_unstable();
        refine(&mut keyed, values, reversed, 24);
        SortedCodes {
            order: keyed.into_iter().map(|(_, c)| c).collect(),
            reversed,
        }
    }

    /// Number of codes covered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when no code is covered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The positions whose strings start with `p` (forward) or end with `p`
    /// (reversed).
    pub fn affix_range(&self, values: &Strs, p: &str) -> std::ops::Range<usize> {
        let p = p.as_bytes();
        let rev = self.reversed;
        let head = |s: &[u8]| -> bool {
            if rev {
                s.ends_with(p)
            } else {
                s.starts_with(p)
            }
        };
        let lo = self
            .order
            .partition_point(|&c| cmp_bytes(values[c as usize].as_bytes(), p, rev).is_lt());
        let hi = lo
            + self.order[lo..].partition_point(|&c| {
                let s = values[c as usize].as_bytes();
                head(s)
            });
        lo..hi
    }

    /// The positions whose strings compare to `v` as `keep` says (forward
    /// order only): `Less` keeps strings below `v`, `Greater` above, `Equal`
    /// equal to it; combined by the caller for `<=` and `>=`.
    pub fn cmp_range(&self, values: &Strs, v: &str, keep: Ordering) -> std::ops::Range<usize> {
        debug_assert!(!self.reversed);
        let v = v.as_bytes();
        let below = self
            .order
            .partition_point(|&c| values[c as usize].as_bytes() < v);
        let upto =
            below + self.order[below..].partition_point(|&c| values[c as usize].as_bytes() == v);
        match keep {
            Ordering::Less => 0..below,
            Ordering::Equal => below..upto,
            Ordering::Greater => upto..self.order.len(),
        }
    }
}

/// A literal every string matching `pattern` ends with, when the pattern is
/// anchored at its end (`...abc$`), sets no flag and has no alternation;
/// None otherwise (a conservative reading: it may miss a suffix, never
/// invent one).
pub(crate) fn literal_suffix(pattern: &str) -> Option<String> {
    if pattern.contains('|') || pattern.contains("(?") {
        return None;
    }
    let chars: Vec<char> = pattern.chars().collect();
    // Backslashes right before position i.
    let escapes = |i: usize| chars[..i].iter().rev().take_while(|&&c| c == '\\').count();
    let last = chars.len().checked_sub(1)?;
    if chars[last] != '$' || escapes(last) % 2 == 1 {
        return None;
    }
    let mut out: Vec<char> = Vec::new();
    let mut i = last;
    while i > 0 {
        let c = chars[i - 1];
        let escaped = escapes(i - 1) % 2 == 1;
        if escaped {
            // `\.` is a literal dot; `\d`, `\b`, ... are classes or assertions.
            if c.is_ascii_punctuation() {
                out.push(c);
                i -= 2;
                continue;
            }
            break;
        }
        if c.is_ascii_alphanumeric() || matches!(c, '@' | '_' | '-' | ',' | ':' | '/' | '=' | ' ') {
            out.push(c);
            i -= 1;
            continue;
        }
        break;
    }
    out.reverse();
    (!out.is_empty()).then(|| out.into_iter().collect())
}

/// A run of a sorted order holding strings that may satisfy a predicate,
/// and whether every string in it does (else each is tested).
pub(crate) struct Candidates {
    /// Positions in that order.
    pub range: std::ops::Range<usize>,
    /// Every string in the range satisfies the predicate.
    pub exact: bool,
}

/// How a predicate narrows down through a sorted order (true: the reversed
/// one); None when it does not (test every string).
pub(crate) fn plan_lookup(pred: &StrPred) -> Option<(bool, Lookup<'_>)> {
    Some(match pred {
        StrPred::StartsWith(p) => (false, Lookup::Affix(p.clone(), true)),
        StrPred::EndsWith(p) => (true, Lookup::Affix(p.clone(), true)),
        StrPred::In(vs) => (false, Lookup::Equal(vs, false)),
        StrPred::NotIn(vs) => (false, Lookup::Equal(vs, true)),
        StrPred::Cmp(op, v) => (false, Lookup::Cmp(op, v)),
        StrPred::Matches(re) => {
            // A pattern that is nothing but its literal (`^abc`, `abc$`)
            // matches every string of the run; else each is tested.
            let pat = re.as_str();
            if let Some(p) = super::eval::literal_prefix(pat) {
                let exact = pat == format!("^{}", regex::escape(&p));
                (false, Lookup::Affix(p, exact))
            } else if let Some(p) = literal_suffix(pat) {
                let exact = pat == format!("{}$", regex::escape(&p));
                (true, Lookup::Affix(p, exact))
            } else {
                return None;
            }
        }
        StrPred::Contains(_) => return None,
    })
}

/// One way of reading a sorted order.
pub(crate) enum Lookup<'a> {
    /// Strings with this prefix (suffix in the reversed order); the bool:
    /// they all satisfy the predicate (else each is tested).
    Affix(String, bool),
    /// Strings equal to one of the values; the bool: the complement.
    Equal(&'a [String], bool),
    /// A byte-wise comparison with a value.
    Cmp(&'static str, &'a str),
}

/// The satisfying codes (as bits over `0..values.len()`) of `pred`, found
/// through `order` (which covers the first `order.len()` codes; later codes
/// are tested one by one).
pub(crate) fn indexed_bits(
    pred: &StrPred,
    lookup: &Lookup<'_>,
    values: &Strs,
    order: &SortedCodes,
) -> Vec<u64> {
    let n = values.len();
    let covered = order.len().min(n);
    let mut bits = vec![0u64; n.div_ceil(64).max(1)];
    let set = |bits: &mut [u64], c: u32| bits[(c >> 6) as usize] |= 1 << (c & 63);
    let mut ranges: Vec<Candidates> = Vec::new();
    let mut invert = false;
    match lookup {
        Lookup::Affix(p, exact) => ranges.push(Candidates {
            range: order.affix_range(values, p),
            exact: *exact,
        }),
        Lookup::Equal(vs, complement) => {
            invert = *complement;
            for v in vs.iter() {
                ranges.push(Candidates {
                    range: order.cmp_range(values, v, Ordering::Equal),
                    exact: true,
                });
            }
        }
        Lookup::Cmp(op, v) => {
            let (a, b) = match *op {
                "<" => (Ordering::Less, None),
                "<=" => (Ordering::Less, Some(Ordering::Equal)),
                ">" => (Ordering::Greater, None),
                _ => (Ordering::Greater, Some(Ordering::Equal)),
            };
            for keep in std::iter::once(a).chain(b) {
                ranges.push(Candidates {
                    range: order.cmp_range(values, v, keep),
                    exact: true,
                });
            }
        }
    }
    for cand in &ranges {
        let codes = &order.order[cand.range.clone()];
        if cand.exact {
            codes.iter().for_each(|&c| set(&mut bits, c));
            continue;
        }
        // Tested in code order (memory order of the strings), in parallel:
        // the run is marked in a bitset, read back word by word. Each worker
        // tests with its own copy of the predicate (a regex copy keeps its
        // own match cache instead of contending for a shared one).
        let mut marked = vec![0u64; bits.len()];
        codes.iter().for_each(|&c| set(&mut marked, c));
        const WORDS: usize = 1 << 10;
        bits.par_chunks_mut(WORDS)
            .zip(marked.par_chunks(WORDS))
            .enumerate()
            .for_each_init(
                || pred.clone(),
                |pred, (ci, (out, words))| {
                    for (w, (o, &m)) in out.iter_mut().zip(words).enumerate() {
                        let mut m = m;
                        while m != 0 {
                            let j = m.trailing_zeros() as usize;
                            m &= m - 1;
                            let c = (ci * WORDS + w) * 64 + j;
                            if pred.test(&values[c]) {
                                *o |= 1 << j;
                            }
                        }
                    }
                },
            );
    }
    if invert {
        for w in bits.iter_mut() {
            *w = !*w;
        }
    }
    // Codes the order does not cover, one by one (this also clears the
    // padding bits set by an inversion).
    for c in covered..bits.len() * 64 {
        let hit = c < n && pred.test(&values[c]);
        let (w, b) = (c >> 6, c & 63);
        if hit {
            bits[w] |= 1 << b;
        } else {
            bits[w] &= !(1 << b);
        }
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut x = seed;
        move |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        }
    }

    const ALPHA: [&str; 10] = ["a", "b", "é", "日", "\0", ".", "@", "z", "ab", "\u{10FFFF}"];

    fn words(next: &mut impl FnMut(u64) -> u64, n: usize) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        while out.len() < n {
            let s: String = (0..next(8))
                .map(|_| ALPHA[next(ALPHA.len() as u64) as usize])
                .collect();
            if seen.insert(s.clone()) {
                out.push(s);
            }
        }
        out
    }

    fn brute(pred: &StrPred, values: &Strs) -> Vec<u64> {
        let mut bits = vec![0u64; values.len().div_ceil(64).max(1)];
        for c in 0..values.len() {
            if pred.test(&values[c]) {
                bits[c >> 6] |= 1 << (c & 63);
            }
        }
        bits
    }

    #[test]
    fn sorted_orders_sort_bytes_forward_and_backward() {
        let mut next = rng(0x9E37_79B9_7F4A_7C15);
        let mut all = words(&mut next, 500);
        // Long strings over two letters and a zero byte: long shared
        // prefixes and suffixes, ties over several key levels.
        let mut seen: std::collections::HashSet<String> = all.iter().cloned().collect();
        while all.len() < 1500 {
            let s: String = (0..next(80))
                .map(|_| ["a", "\0", "é"][(next(7) % 3) as usize])
                .collect();
            if seen.insert(s.clone()) {
                all.push(s);
            }
        }
        let values = Strs::from(all);
        for rev in [false, true] {
            let o = SortedCodes::build(&values, rev);
            let key = |c: u32| {
                let b = values[c as usize].as_bytes().to_vec();
                if rev {
                    b.into_iter().rev().collect()
                } else {
                    b
                }
            };
            assert_eq!(o.len(), values.len());
            assert!(o.order.windows(2).all(|w| key(w[0]) < key(w[1])));
        }
    }

    #[test]
    fn indexed_predicates_equal_a_scan() {
        let mut next = rng(0x1234_5678_9ABC_DEF1);
        for round in 0..30 {
            let size = 1 + next(300) as usize;
            let all = words(&mut next, size);
            // The orders cover a prefix of the codes; later ones are tested
            // one by one (codes interned after the build).
            let covered = if round % 3 == 0 {
                next(all.len() as u64 + 1) as usize
            } else {
                all.len()
            };
            let early = Strs::from(all[..covered].to_vec());
            let values = Strs::from(all.clone());
            let fwd = SortedCodes::build(&early, false);
            let rev = SortedCodes::build(&early, true);
            let pick = |next: &mut dyn FnMut(u64) -> u64| -> String {
                if next(3) == 0 {
                    all[next(all.len() as u64) as usize].clone()
                } else {
                    (0..next(3))
                        .map(|_| ALPHA[next(ALPHA.len() as u64) as usize])
                        .collect()
                }
            };
            let mut preds = Vec::new();
            for _ in 0..20 {
                let v = pick(&mut next);
                let mut vs: Vec<String> = (0..1 + next(3)).map(|_| pick(&mut next)).collect();
                vs.sort();
                vs.dedup();
                let lit = regex::escape(&v);
                preds.extend([
                    StrPred::StartsWith(v.clone()),
                    StrPred::EndsWith(v.clone()),
                    StrPred::In(vs.clone()),
                    StrPred::NotIn(vs),
                    StrPred::Cmp(["<", "<=", ">", ">="][next(4) as usize], v.clone()),
                    StrPred::Matches(regex::Regex::new(&format!("^{lit}")).unwrap()),
                    StrPred::Matches(regex::Regex::new(&format!("{lit}$")).unwrap()),
                    StrPred::Matches(regex::Regex::new(&format!("^a.*{lit}$")).unwrap()),
                    StrPred::Matches(regex::Regex::new(&format!("b?a{lit}$")).unwrap()),
                ]);
            }
            preds.push(StrPred::StartsWith(String::new()));
            preds.push(StrPred::EndsWith(String::new()));
            preds.push(StrPred::In(vec![String::new()]));
            for pred in &preds {
                let Some((r, lookup)) = plan_lookup(pred) else {
                    continue;
                };
                let order = if r { &rev } else { &fwd };
                let got = indexed_bits(pred, &lookup, &values, order);
                assert_eq!(got, brute(pred, &values), "{pred:?} covered {covered}");
            }
        }
    }

    #[test]
    fn regex_literal_suffixes_never_reject_a_match() {
        assert_eq!(literal_suffix("@uni\\.edu$").as_deref(), Some("@uni.edu"));
        assert_eq!(literal_suffix("ab*c$").as_deref(), Some("c"));
        assert_eq!(literal_suffix("ab?$"), None);
        assert_eq!(literal_suffix("abc\\$"), None);
        assert_eq!(literal_suffix("abc\\\\$").as_deref(), Some("abc\\"));
        assert_eq!(literal_suffix("(?i)abc$"), None);
        assert_eq!(literal_suffix("x|abc$"), None);
        assert_eq!(literal_suffix("ab\\d$"), None);
        assert_eq!(literal_suffix("a{2}$"), None);
        assert_eq!(literal_suffix("ab.c$").as_deref(), Some("c"));
        let mut next = rng(0xDEAD_BEEF_1234_5678);
        let atoms = [
            "a", "b", "1", "@", "-", ".", "\\.", "[ab]", "(a|b)", "\\d", "x", "\\\\",
        ];
        let quants = ["", "", "*", "?", "+", "{2}", "{0,2}"];
        for _ in 0..400 {
            let mut pat = String::new();
            for _ in 0..1 + next(5) {
                pat.push_str(atoms[next(atoms.len() as u64) as usize]);
                pat.push_str(quants[next(quants.len() as u64) as usize]);
            }
            pat.push('$');
            let Ok(re) = regex::Regex::new(&pat) else {
                continue;
            };
            let suffix = literal_suffix(&pat);
            for _ in 0..200 {
                let s: String = (0..next(7))
                    .map(|_| ['a', 'b', '1', '@', '-', '.', 'x', '\\'][next(8) as usize])
                    .collect();
                if re.is_match(&s) {
                    if let Some(p) = &suffix {
                        assert!(s.ends_with(p.as_str()), "{pat} {s} {p}");
                    }
                }
            }
        }
    }
}
