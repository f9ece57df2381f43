//! Allocation-free string metrics for the comparison hot path.
//!
//! ASCII strings of up to 64 bytes (almost every name, email part, phone or
//! date) are compared on bytes with stack buffers and bit flags; anything
//! else falls back to `strsim` on chars. Both paths give the same results as
//! `strsim::jaro_winkler` and `strsim::osa_distance`.

const MAX_FAST: usize = 64;

fn fast(a: &str, b: &str) -> bool {
    a.len() <= MAX_FAST && b.len() <= MAX_FAST && a.is_ascii() && b.is_ascii()
}

fn jaro_bytes(a: &[u8], b: &[u8]) -> f64 {
    let (la, lb) = (a.len(), b.len());
    if la == 0 && lb == 0 {
        return 1.0;
    }
    if la == 0 || lb == 0 {
        return 0.0;
    }
    let range = (la.max(lb) / 2).saturating_sub(1);
    let (mut fa, mut fb) = (0u64, 0u64);
    let mut matches = 0usize;
    for (i, &x) in a.iter().enumerate() {
        let lo = i.saturating_sub(range);
        let hi = lb.min(i + range + 1);
        for j in lo..hi {
            if fb & (1 << j) == 0 && b[j] == x {
                fa |= 1 << i;
                fb |= 1 << j;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let mut trans = 0usize;
    let mut j = 0usize;
    for (i, &x) in a.iter().enumerate() {
        if fa & (1 << i) != 0 {
            while fb & (1 << j) == 0 {
                j += 1;
            }
            if b[j] != x {
                trans += 1;
            }
            j += 1;
        }
    }
    let m = matches as f64;
    (m / la as f64 + m / lb as f64 + (matches - trans / 2) as f64 / m) / 3.0
}

/// Jaro-Winkler similarity (same values as `strsim::jaro_winkler`).
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    if !fast(a, b) {
        return strsim::jaro_winkler(a, b);
    }
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let sim = jaro_bytes(x, y);
    if sim > 0.7 {
        let prefix = x.iter().take(4).zip(y).take_while(|(p, q)| p == q).count();
        sim + 0.1 * prefix as f64 * (1.0 - sim)
    } else {
        sim
    }
}

/// An upper bound of [`jaro_winkler`] from the lengths alone: a cheap test
/// that skips the metric when it cannot reach a threshold.
pub fn jaro_winkler_bound(la: usize, lb: usize) -> f64 {
    if la == 0 || lb == 0 {
        return if la == lb { 1.0 } else { 0.0 };
    }
    let m = la.min(lb) as f64;
    let j = (m / la as f64 + m / lb as f64 + 1.0) / 3.0;
    if j > 0.7 {
        j + 0.4 * (1.0 - j)
    } else {
        j
    }
}

/// Optimal string alignment distance (same values as `strsim::osa_distance`).
pub fn osa_distance(a: &str, b: &str) -> usize {
    if !fast(a, b) {
        return strsim::osa_distance(a, b);
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (la, lb) = (a.len(), b.len());
    if la == 0 {
        return lb;
    }
    if lb == 0 {
        return la;
    }
    // Three rolling rows of the DP table, rotated by index.
    let mut rows = [[0u8; MAX_FAST + 1]; 3];
    for (j, p) in rows[1].iter_mut().enumerate().take(lb + 1) {
        *p = j as u8;
    }
    for i in 1..=la {
        let ci = (i + 1) % 3;
        let pi = i % 3;
        let p2i = (i + 2) % 3;
        rows[ci][0] = i as u8;
        for j in 1..=lb {
            let cost = u8::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[pi][j] + 1)
                .min(rows[ci][j - 1] + 1)
                .min(rows[pi][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[p2i][j - 2] + 1);
            }
            rows[ci][j] = d;
        }
    }
    usize::from(rows[(la + 1) % 3][lb])
}

/// Whether two ASCII byte strings are at most one edit apart (insertion,
/// deletion, substitution or adjacent transposition), in one pass.
fn within_one(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let p = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    if p == a.len() {
        return b.len() - a.len() <= 1;
    }
    if a.len() == b.len() {
        // substitution at p, or transposition of p and p + 1
        a[p + 1..] == b[p + 1..]
            || (p + 1 < a.len() && a[p] == b[p + 1] && a[p + 1] == b[p] && a[p + 2..] == b[p + 2..])
    } else if b.len() == a.len() + 1 {
        a[p..] == b[p + 1..]
    } else {
        false
    }
}

/// Whether two strings are within `max` edits (optimal string alignment).
pub fn within_edits(a: &str, b: &str, max: usize) -> bool {
    if max == 1 && a.is_ascii() && b.is_ascii() {
        return within_one(a.as_bytes(), b.as_bytes());
    }
    a.len().abs_diff(b.len()) <= max && osa_distance(a, b) <= max
}

/// An upper bound of [`jaro_winkler`] from the characters the two strings
/// have in common (ignoring positions); exact strings only when ASCII.
pub fn jaro_winkler_bag_bound(a: &str, b: &str) -> f64 {
    if !(a.is_ascii() && b.is_ascii()) {
        return 1.0;
    }
    let (x, y) = (a.as_bytes(), b.as_bytes());
    if x.is_empty() || y.is_empty() {
        return if x.len() == y.len() { 1.0 } else { 0.0 };
    }
    let mut h = [0i16; 64];
    for &c in x {
        h[usize::from(c & 63)] += 1;
    }
    let mut common = 0usize;
    for &c in y {
        let k = usize::from(c & 63);
        if h[k] > 0 {
            h[k] -= 1;
            common += 1;
        }
    }
    if common == 0 {
        return 0.0;
    }
    let m = common as f64;
    let j = (m / x.len() as f64 + m / y.len() as f64 + 1.0) / 3.0;
    if j > 0.7 {
        j + 0.4 * (1.0 - j)
    } else {
        j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_agree_with_strsim() {
        let words = [
            "",
            "a",
            "ab",
            "ba",
            "smith",
            "smyth",
            "smiht",
            "jonathan",
            "jonathon",
            "martha",
            "marhta",
            "dixon",
            "dicksonx",
            "abcdefghij",
            "münchen",
            "munchen",
            "ca",
            "abc",
            "william",
            "bill",
            "kathryn",
            "catherine",
        ];
        for a in words {
            for b in words {
                assert_eq!(jaro_winkler(a, b), strsim::jaro_winkler(a, b), "jw {a} {b}");
                assert_eq!(
                    osa_distance(a, b),
                    strsim::osa_distance(a, b),
                    "osa {a} {b}"
                );
                assert!(
                    jaro_winkler_bound(a.chars().count(), b.chars().count())
                        >= jaro_winkler(a, b) - 1e-12
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn random_strings_agree_with_strsim(a in "[a-e]{0,12}", b in "[a-e]{0,12}") {
            proptest::prop_assert_eq!(jaro_winkler(&a, &b), strsim::jaro_winkler(&a, &b));
            proptest::prop_assert_eq!(osa_distance(&a, &b), strsim::osa_distance(&a, &b));
            proptest::prop_assert!(jaro_winkler_bound(a.len(), b.len()) >= jaro_winkler(&a, &b) - 1e-12);
            proptest::prop_assert!(jaro_winkler_bag_bound(&a, &b) >= jaro_winkler(&a, &b) - 1e-12);
            proptest::prop_assert_eq!(within_edits(&a, &b, 1), strsim::osa_distance(&a, &b) <= 1);
        }
    }
}
