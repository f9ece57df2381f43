//! Phone number normalization to E.164.
//!
//! Validity follows libphonenumber's metadata (the `phonenumber` crate ships
//! it): a number is valid when its national significant number matches the
//! general pattern of its country and the pattern of at least one number type
//! (fixed line, mobile, toll free, ...).
//!
//! The crate's own `parse` + `is_valid` costs 6-14 µs per number, mostly in
//! its shared regex cache. The common shapes are therefore parsed here
//! directly (digits with the usual separators, `+`/`00`/region international
//! prefixes, a national prefix, an extension) and validated against patterns
//! compiled once per country code; anything else (letters, transform rules
//! such as Argentina's or Mexico's) falls back to the crate.

use std::sync::OnceLock;

use phonenumber::metadata::{Metadata, DATABASE};
use phonenumber::Type;
use regex::Regex;

use crate::{CoreError, CoreResult};

/// A default region resolved once for a column: its calling code, prefixes
/// and whether its national prefix can be stripped literally.
#[derive(Debug, Clone)]
pub struct PhoneRegion {
    id: phonenumber::country::Id,
    code: u16,
    intl_prefix: Option<Regex>,
    /// National numbers can be parsed by the fast path (no transform rule,
    /// the prefix for parsing is the national prefix itself).
    simple_national: bool,
    /// Without a transform rule but with a prefix for parsing that is a
    /// pattern ("0|180020" in GB): that pattern and the region's general
    /// pattern, to strip the prefix as libphonenumber does.
    prefix_for_parsing: Option<(Regex, Regex)>,
}

impl PhoneRegion {
    /// Resolve an ISO 3166 alpha-2 region ("US", "gb"). Errors name the region
    /// code only.
    pub fn new(region: &str) -> CoreResult<Self> {
        let up = region.trim().to_ascii_uppercase();
        let bad = || CoreError::InvalidInput(format!("unknown phone region {up:?}"));
        if up.len() != 2 {
            return Err(bad());
        }
        let id: phonenumber::country::Id = up.parse().map_err(|_| bad())?;
        let meta = DATABASE.by_id(up.as_str()).ok_or_else(bad)?;
        let simple_national = meta.national_prefix_transform_rule().is_none()
            && match meta.national_prefix_for_parsing() {
                None => true,
                Some(p) => Some(p.as_str()) == meta.national_prefix(),
            };
        let intl_prefix = meta
            .international_prefix()
            .and_then(|p| Regex::new(&format!("^(?:{})", squeeze(p.as_str()))).ok());
        let prefix_for_parsing =
            if simple_national || meta.national_prefix_transform_rule().is_some() {
                None
            } else {
                meta.national_prefix_for_parsing().and_then(|p| {
                    let prefix = Regex::new(&format!("^(?:{})", squeeze(p.as_str()))).ok()?;
                    let general = meta.descriptors().general().national_number().as_str();
                    let general = Regex::new(&format!("^(?:{})$", squeeze(general))).ok()?;
                    Some((prefix, general))
                })
            };
        Ok(Self {
            id,
            code: meta.country_code(),
            intl_prefix,
            simple_national,
            prefix_for_parsing,
        })
    }

    /// The region's country calling code (1 for "US").
    pub fn code(&self) -> u16 {
        self.code
    }
}

/// Metadata patterns are laid out with whitespace that is not part of them.
fn squeeze(pattern: &str) -> String {
    pattern.chars().filter(|c| !c.is_whitespace()).collect()
}

/// A pattern of the metadata, compiled on first use: most numbers of a
/// calling code are told apart by a few of its regions' patterns, and
/// compiling all of them up front (about 0.1 s for code 1's 25 regions)
/// held up every thread that needed the code meanwhile.
struct LazyRegex {
    pattern: String,
    re: OnceLock<Option<Regex>>,
}

impl LazyRegex {
    fn new(pattern: String) -> LazyRegex {
        LazyRegex {
            pattern,
            re: OnceLock::new(),
        }
    }

    /// The compiled pattern; `None` when it does not compile.
    fn get(&self) -> Option<&Regex> {
        self.re
            .get_or_init(|| Regex::new(&self.pattern).ok())
            .as_ref()
    }
}

struct Desc {
    lengths: Vec<u16>,
    re: LazyRegex,
}

impl Desc {
    fn new(d: &phonenumber::metadata::Descriptor) -> Desc {
        Desc {
            lengths: d.possible_length().to_vec(),
            re: LazyRegex::new(format!("^(?:{})$", squeeze(d.national_number().as_str()))),
        }
    }

    /// Whether `national` has a possible length and matches the pattern (a
    /// pattern that does not compile matches nothing).
    fn is_match(&self, national: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(national.len() as u16)))
            && self.re.get().is_some_and(|re| re.is_match(national))
    }
}

struct CompiledRegion {
    leading: Option<LazyRegex>,
    general: Desc,
    types: Vec<Desc>,
    national_prefix: Option<String>,
}

impl CompiledRegion {
    fn compile(meta: &Metadata) -> Option<Self> {
        let d = meta.descriptors();
        let general = Desc::new(d.general());
        // Fixed line and mobile first: they hold most numbers, so the other
        // types' patterns are rarely needed (any type makes a number valid).
        let kinds = [
            Type::FixedLine,
            Type::Mobile,
            Type::TollFree,
            Type::PremiumRate,
            Type::SharedCost,
            Type::Voip,
            Type::PersonalNumber,
            Type::Pager,
            Type::Uan,
            Type::Voicemail,
        ];
        let types = kinds
            .iter()
            .filter_map(|k| d.get(*k))
            .map(Desc::new)
            .collect();
        let leading = meta
            .leading_digits()
            .map(|p| LazyRegex::new(format!("^(?:{})", squeeze(p.as_str()))));
        Some(Self {
            leading,
            general,
            types,
            national_prefix: meta.national_prefix().map(str::to_string),
        })
    }

    fn is_valid(&self, national: &str) -> bool {
        // The possible lengths first: the cheapest test, and the one that
        // turns a number away from most of the regions sharing a code.
        let lengths = &self.general.lengths;
        if !lengths.is_empty() && !lengths.contains(&(national.len() as u16)) {
            return false;
        }
        // A leading-digits pattern that does not compile tests nothing.
        if let Some(l) = self.leading.as_ref().and_then(LazyRegex::get) {
            if !l.is_match(national) {
                return false;
            }
        }
        self.general.is_match(national) && self.types.iter().any(|t| t.is_match(national))
    }
}

/// Compiled patterns per country calling code (codes are below 1000).
static BY_CODE: [OnceLock<Vec<CompiledRegion>>; 1000] = [const { OnceLock::new() }; 1000];

fn regions_for(code: u16) -> &'static [CompiledRegion] {
    if code == 0 || code >= 1000 {
        return &[];
    }
    BY_CODE[code as usize].get_or_init(|| {
        DATABASE
            .by_code(&code)
            .unwrap_or_default()
            .into_iter()
            .filter_map(CompiledRegion::compile)
            .collect()
    })
}

/// Whether `national` (digits only) is a valid national significant number
/// for the calling code `code`.
pub fn is_valid_national(code: u16, national: &str) -> bool {
    regions_for(code).iter().any(|r| r.is_valid(national))
}

/// Strip a literal national prefix when that makes the number valid; keep the
/// digits as they are otherwise.
fn resolve_national(code: u16, digits: &str) -> Option<String> {
    if is_valid_national(code, digits) {
        return Some(digits.to_string());
    }
    for r in regions_for(code) {
        if let Some(p) = r.national_prefix.as_deref() {
            if let Some(rest) = digits.strip_prefix(p) {
                if !p.is_empty() && is_valid_national(code, rest) {
                    return Some(rest.to_string());
                }
            }
        }
    }
    None
}

/// The calling code at the start of `digits` and the rest.
fn split_country_code(digits: &str) -> Option<(u16, &str)> {
    if digits.starts_with('0') {
        return None; // no calling code starts with 0 ("034" is not 34)
    }
    for len in 1..=3.min(digits.len()) {
        let code: u16 = digits[..len].parse().ok()?;
        if code != 0 && DATABASE.region(&code).is_some() {
            return Some((code, &digits[len..]));
        }
    }
    None
}

/// What the fast scanner made of a raw value.
enum Scan {
    /// Digits of the number (extension dropped), with whether it was written
    /// in international form with a leading `+`.
    Digits { plus: bool, digits: String },
    /// A shape the fast path does not handle.
    Fallback,
    /// Not a phone number at all.
    Invalid,
}

fn is_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '-' | '.' | '(' | ')' | '/' | '[' | ']' | '\u{a0}' | '\u{2010}'
            ..='\u{2015}' | '\u{2212}' | '\u{3000}' | '\t'
    )
}

/// Lowercased extension markers, longest first.
const EXT_MARKERS: [&str; 7] = ["extension", "ext.", "ext", "ex.", "x.", "x", "#"];

fn scan(raw: &str) -> Scan {
    let s = raw.trim();
    let s = strip_ascii_prefix(s, "tel:").unwrap_or(s);
    let mut digits = String::with_capacity(16);
    let mut plus = false;
    let mut rest = s;
    // Leading junk: anything that is not a digit or '+', as long as it holds
    // no letters (those may be vanity numbers: let the crate decide).
    while let Some(c) = rest.chars().next() {
        if c.is_ascii_digit() || c == '+' || c == '\u{ff0b}' {
            break;
        }
        if c.is_alphanumeric() {
            return Scan::Fallback;
        }
        rest = &rest[c.len_utf8()..];
    }
    for (i, c) in rest.char_indices() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else if (c == '+' || c == '\u{ff0b}') && digits.is_empty() && !plus {
            plus = true;
        } else if is_separator(c) {
            continue;
        } else if c == ',' || c == ';' || c.is_alphabetic() || c == '#' {
            // An extension ends the number: "x123", "ext. 12", ";ext=5".
            let tail = rest[i..].trim_start_matches([',', ';']).trim_start();
            let lower = tail.to_lowercase();
            let marker = EXT_MARKERS.iter().find(|m| lower.starts_with(**m));
            match marker {
                Some(m) => {
                    let after = tail[m.len()..].trim_start_matches([' ', '.', ':', '=', '#']);
                    if after.is_empty()
                        || after
                            .chars()
                            .all(|c| c.is_ascii_digit() || c.is_whitespace())
                    {
                        break;
                    }
                    return Scan::Fallback;
                }
                None => {
                    if c == ',' || c == ';' {
                        // Trailing punctuation only.
                        if tail.is_empty() {
                            break;
                        }
                    }
                    return Scan::Fallback;
                }
            }
        } else if c.is_ascii_punctuation() || c.is_whitespace() {
            // Trailing junk such as "*" or "!": allowed only at the end.
            if rest[i..].chars().all(|c| !c.is_alphanumeric() && c != '+') {
                break;
            }
            return Scan::Fallback;
        } else {
            return Scan::Fallback;
        }
    }
    if digits.len() < 3 || digits.len() > 17 {
        return Scan::Invalid;
    }
    Scan::Digits { plus, digits }
}

fn strip_ascii_prefix<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len() && s.is_char_boundary(prefix.len()) {
        let (head, tail) = s.split_at(prefix.len());
        if head.eq_ignore_ascii_case(prefix) {
            return Some(tail);
        }
    }
    None
}

fn e164(code: u16, national: &str) -> String {
    let mut out = String::with_capacity(national.len() + 4);
    out.push('+');
    out.push_str(&code.to_string());
    out.push_str(national);
    out
}

fn international(digits: &str) -> Option<String> {
    let (code, rest) = split_country_code(digits)?;
    resolve_national(code, rest).map(|n| e164(code, &n))
}

/// Normalize one phone number to E.164 (`+14155552671`) using `region` for
/// numbers written without a country code. Extensions are dropped. Returns
/// `None` when the value is not a valid number.
pub fn normalize_phone(raw: &str, region: &PhoneRegion) -> Option<String> {
    match scan(raw) {
        Scan::Invalid => None,
        Scan::Fallback => slow_path(raw, region),
        Scan::Digits { plus: true, digits } => international(&digits),
        Scan::Digits {
            plus: false,
            digits,
        } => {
            // International access codes: "00" is taken everywhere, plus the
            // region's own ("011" in North America).
            if let Some(rest) = digits.strip_prefix("00") {
                if let Some(n) = international(rest) {
                    return Some(n);
                }
            }
            if let Some(re) = &region.intl_prefix {
                if let Some(m) = re.find(&digits) {
                    if m.end() > 0 {
                        if let Some(n) = international(&digits[m.end()..]) {
                            return Some(n);
                        }
                    }
                }
            }
            if !region.simple_national {
                if let Some(n) = strip_prefix_for_parsing(&digits, region) {
                    return Some(n);
                }
                return slow_path(raw, region);
            }
            if let Some(n) = resolve_national(region.code, &digits) {
                return Some(e164(region.code, &n));
            }
            // The country code written without "+" ("44 20 7946 0958" in GB).
            let code = region.code.to_string();
            let rest = digits.strip_prefix(code.as_str())?;
            resolve_national(region.code, rest).map(|n| e164(region.code, &n))
        }
    }
}

/// A national number of a region whose prefix for parsing is a pattern:
/// strip what the pattern matches at the start, unless the number was viable
/// (matched the region's general pattern) before and is not after, as
/// libphonenumber does; `None` unless the result is valid (the crate then
/// decides).
fn strip_prefix_for_parsing(digits: &str, region: &PhoneRegion) -> Option<String> {
    let (prefix, general) = region.prefix_for_parsing.as_ref()?;
    let national = match prefix.find(digits) {
        Some(m) if m.end() > 0 => {
            let stripped = &digits[m.end()..];
            if general.is_match(digits) && !general.is_match(stripped) {
                digits
            } else {
                stripped
            }
        }
        _ => digits,
    };
    is_valid_national(region.code, national).then(|| e164(region.code, national))
}

/// Parse with the `phonenumber` crate and validate with the compiled patterns.
fn slow_path(raw: &str, region: &PhoneRegion) -> Option<String> {
    let n = phonenumber::parse(Some(region.id), raw.trim()).ok()?;
    let code = n.code().value();
    let national = n.national().to_string();
    is_valid_national(code, &national).then(|| e164(code, &national))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> PhoneRegion {
        PhoneRegion::new("US").unwrap()
    }

    #[test]
    fn common_us_shapes() {
        let r = us();
        for s in [
            "(202) 555-0143",
            "202.555.0143",
            "202-555-0143",
            "+1 202 555 0143",
            "1 (202) 555-0143",
            "001 202 555 0143",
            "011 1 202 555 0143",
            "  tel:+1-202-555-0143 ",
            "202 555 0143 x123",
            "202-555-0143 ext. 12",
            "(202) 555-0143;ext=9",
            "*202 555 0143*",
            "+1 (202) 555-0143.",
        ] {
            assert_eq!(
                normalize_phone(s, &r).as_deref(),
                Some("+12025550143"),
                "{s:?}"
            );
        }
    }

    #[test]
    fn other_regions_and_international_prefixes() {
        let gb = PhoneRegion::new("gb").unwrap();
        let de = PhoneRegion::new("DE").unwrap();
        let r = us();
        assert_eq!(
            normalize_phone("020 7946 0958", &gb).as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            normalize_phone("0044 20 7946 0958", &r).as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            normalize_phone("+44 (0)20 7946 0958", &r).as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            normalize_phone("44 20 7946 0958", &gb).as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            normalize_phone("030 123456", &de).as_deref(),
            Some("+4930123456")
        );
        assert_eq!(
            normalize_phone("+39 06 1234 5678", &r).as_deref(),
            Some("+390612345678")
        );
    }

    #[test]
    fn invalid_numbers_are_none() {
        let r = us();
        for s in [
            "",
            "n/a",
            "12",
            "555-1234",
            "(555) 123-4567",
            "+1 000 000 0000",
            "202 555 01434444444",
            "+999 1234 5678",
        ] {
            assert_eq!(normalize_phone(s, &r), None, "{s:?}");
        }
    }

    #[test]
    fn vanity_and_odd_shapes_use_the_crate() {
        let r = us();
        assert_eq!(
            normalize_phone("1-800-FLOWERS", &r).as_deref(),
            Some("+18003569377")
        );
        let mx = PhoneRegion::new("MX").unwrap();
        assert!(!mx.simple_national || mx.code() == 52);
    }

    #[test]
    fn unknown_region_is_an_error_naming_only_the_code() {
        let e = PhoneRegion::new("ZZ").unwrap_err();
        assert_eq!(
            e,
            CoreError::InvalidInput("unknown phone region \"ZZ\"".into())
        );
        assert!(PhoneRegion::new("USA").is_err());
    }

    #[test]
    fn agrees_with_the_crate_on_its_examples() {
        // Every example number in the metadata, for a few regions, written in
        // national and international form.
        for id in ["US", "GB", "DE", "FR", "AU", "IN", "BR", "JP"] {
            let region = PhoneRegion::new(id).unwrap();
            let meta = DATABASE.by_id(id).unwrap();
            let d = meta.descriptors();
            for desc in [d.fixed_line(), d.mobile(), d.toll_free()]
                .into_iter()
                .flatten()
            {
                let Some(ex) = desc.example() else { continue };
                let want = format!("+{}{}", meta.country_code(), ex);
                let intl = format!("+{} {}", meta.country_code(), ex);
                assert_eq!(
                    normalize_phone(&intl, &region).as_deref(),
                    Some(want.as_str()),
                    "{id} {ex}"
                );
                let parsed = phonenumber::parse(Some(region.id), &intl).unwrap();
                assert!(phonenumber::is_valid(&parsed), "{id} {ex}");
            }
        }
    }

    #[test]
    fn a_pattern_prefix_for_parsing_agrees_with_the_crate() {
        // Regions whose prefix for parsing is a pattern, with their examples
        // in national form and random digits behind each alternative. (Digits
        // after "00" are read as international everywhere, a leniency of the
        // fast path the crate does not share: not compared here.)
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut fast = 0;
        for id in ["GB", "AU", "JE", "IM", "NZ", "RU", "IT", "ES", "NL"] {
            let region = PhoneRegion::new(id).unwrap();
            if region.prefix_for_parsing.is_none() {
                continue;
            }
            let meta = DATABASE.by_id(id).unwrap();
            let d = meta.descriptors();
            let mut inputs: Vec<String> = Vec::new();
            for desc in [d.fixed_line(), d.mobile(), d.toll_free()]
                .into_iter()
                .flatten()
            {
                if let Some(ex) = desc.example() {
                    // The example with its last three digits drawn anew
                    // (mostly still valid), behind each prefix.
                    for _ in 0..60 {
                        let keep = &ex[..ex.len().saturating_sub(3)];
                        let tail: String = (0..ex.len() - keep.len())
                            .map(|_| char::from(b'0' + (next() % 10) as u8))
                            .collect();
                        let n = format!("{keep}{tail}");
                        for head in ["0", "", "180020", "1832"] {
                            inputs.push(format!("{head}{n}"));
                        }
                        inputs.push(format!("{}{n}", meta.country_code()));
                    }
                }
            }
            for _ in 0..3000 {
                let head = [
                    "0", "00", "180020", "1832", "44", "61", "", "07", "01", "02",
                ][(next() % 10) as usize];
                let len = 6 + (next() % 7) as usize;
                let tail: String = (0..len)
                    .map(|_| char::from(b'0' + (next() % 10) as u8))
                    .collect();
                inputs.push(format!("{head}{tail}"));
            }
            for raw in &inputs {
                // Whenever the pattern path answers, the crate answers the same.
                if let Some(got) = strip_prefix_for_parsing(raw, &region) {
                    assert_eq!(Some(got), slow_path(raw, &region), "{id} {raw}");
                    fast += 1;
                }
            }
        }
        assert!(fast > 1000, "the pattern path answered {fast} inputs");
    }

    #[test]
    #[ignore = "timing probe: cargo test --release -p crmkit-core phone_speed -- --ignored --nocapture"]
    fn phone_speed() {
        let r = us();
        let inputs = [
            "(202) 555-0143",
            "+44 20 7946 0958",
            "202.555.0143 x12",
            "0049 30 123456",
        ];
        let _ = normalize_phone(inputs[0], &r);
        let _ = normalize_phone(inputs[1], &r);
        let _ = normalize_phone(inputs[3], &r);
        let n = 200_000;
        let t = std::time::Instant::now();
        let mut ok = 0;
        for i in 0..n {
            ok += normalize_phone(inputs[i % inputs.len()], &r).is_some() as usize;
        }
        let per = t.elapsed().as_nanos() as f64 / n as f64;
        println!("normalize_phone: {per:.0} ns per number ({ok} valid)");
    }
}
