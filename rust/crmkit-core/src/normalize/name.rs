//! Personal names: a display-clean form and an ASCII match key.

use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

/// Lowercase particles kept lowercase inside a name ("van der Berg").
const PARTICLES: [&str; 17] = [
    "van", "von", "der", "den", "de", "da", "das", "di", "do", "dos", "du", "del", "della", "la",
    "le", "ten", "ter",
];

/// Titles dropped from the front of a match key.
const TITLES: [&str; 9] = [
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam",
];

/// Suffixes dropped from the end of a match key.
const SUFFIXES: [&str; 8] = ["jr", "sr", "ii", "iii", "iv", "phd", "md", "esq"];

/// Clean a name for display: Unicode NFC, trimmed, inner whitespace collapsed
/// to one space. A value written all in upper case or all in lower case is
/// proper-cased ("MARY-ANN O'BRIEN" -> "Mary-Ann O'Brien", "mcdonald" ->
/// "McDonald", "jan van der berg" -> "Jan van der Berg"); mixed case is kept
/// as written. Returns `None` when nothing is left.
pub fn clean_name(raw: &str) -> Option<String> {
    let nfc: std::borrow::Cow<'_, str> = if is_nfc_quick(raw.chars()) == IsNormalized::Yes {
        raw.into()
    } else {
        raw.nfc().collect::<String>().into()
    };
    let mut out = String::with_capacity(nfc.len());
    for word in nfc.split(gap).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.is_empty() {
        return None;
    }
    let has_upper = out.chars().any(char::is_uppercase);
    let has_lower = out.chars().any(char::is_lowercase);
    if has_upper && has_lower {
        return Some(out);
    }
    if !has_upper && !has_lower {
        return Some(out);
    }
    let cased = proper_case(&out);
    if cased.is_ascii() || is_nfc_quick(cased.chars()) == IsNormalized::Yes {
        Some(cased)
    } else {
        Some(cased.nfc().collect())
    }
}

fn proper_case(s: &str) -> String {
    let lower = s.to_lowercase();
    let words: Vec<&str> = lower.split(' ').collect();
    let n = words.len();
    let mut out = String::with_capacity(s.len());
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let is_particle = PARTICLES.contains(w);
        if is_particle && i > 0 && i + 1 < n {
            out.push_str(w);
        } else if matches!(*w, "ii" | "iii" | "iv" | "md" | "phd") && i > 0 && i + 1 == n {
            match *w {
                "phd" => out.push_str("PhD"),
                other => out.push_str(&other.to_uppercase()),
            }
        } else {
            case_word(w, &mut out);
        }
    }
    out
}

/// Capitalize each part of a word split at hyphens and apostrophes, with the
/// "Mc" prefix handled ("mcdonald" -> "McDonald").
fn case_word(w: &str, out: &mut String) {
    let mut start_of_part = true;
    let mut part_start = out.len();
    for c in w.chars() {
        if start_of_part && c.is_alphabetic() {
            // Letters whose capital is several letters ("ß" -> "SS") stay as written.
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => out.push(u),
                _ => out.push(c),
            }
            start_of_part = false;
        } else {
            out.push(c);
        }
        if matches!(c, '-' | '\'' | '\u{2019}' | '.') {
            start_of_part = true;
            part_start = out.len();
        } else if !start_of_part && &out[part_start..] == "Mc" {
            start_of_part = true;
        }
    }
    // "Mc" on its own stays "Mc".
}

fn push_key_char(c: char, out: &mut String) {
    if c.is_ascii_alphanumeric() {
        out.push(c.to_ascii_lowercase());
    } else if !matches!(c, '\'' | '.' | '`') {
        out.push(' ');
    }
}

/// Whether `c` separates words, as [`clean_name`] splits them.
fn gap(c: char) -> bool {
    c.is_whitespace() || c.is_control()
}

/// Whether a name cell holds nothing but whitespace and control characters:
/// what [`clean_name`] turns into `None`.
pub fn is_blank(raw: &str) -> bool {
    raw.chars().all(gap)
}

/// Whether a word (any case, trailing dot allowed) is a name suffix ("Jr.").
fn is_suffix(word: &str) -> bool {
    let w = word
        .trim_matches(gap)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    SUFFIXES.contains(&w.as_str())
}

/// The `(given, family)` parts of a whole name typed into one field:
/// `"Baker, James"` (family name first, before a comma) or `"James Baker"`
/// (family name last). A comma before a suffix (`"James Baker, Jr."`) is not
/// read as the family-first form, and a trailing suffix stays with the
/// family name (`"James Baker Jr"` -> `("James", "Baker Jr")`). `None` for a
/// single word.
pub fn split_full_name(full: &str) -> Option<(&str, &str)> {
    let full = full.trim_matches(gap);
    if let Some(parts) = family_first(full) {
        return Some(parts);
    }
    let mut cut = full.rfind(gap)?;
    if is_suffix(&full[cut..]) {
        cut = full[..cut].trim_end_matches(gap).rfind(gap)?;
    }
    let given = full[..cut]
        .trim_matches(gap)
        .trim_end_matches(',')
        .trim_end_matches(gap);
    (!given.is_empty()).then(|| (given, full[cut..].trim_matches(gap)))
}

/// `(given, family)` of `"Family, Given"`; `None` for any other form.
fn family_first(full: &str) -> Option<(&str, &str)> {
    let (family, given) = full.split_once(',')?;
    let (family, given) = (family.trim_matches(gap), given.trim_matches(gap));
    (!family.is_empty() && !given.is_empty() && !is_suffix(given)).then_some((given, family))
}

/// The `(given, family)` parts of a last-name field holding a whole name in
/// the family-first form (`"Baker, James"`), for a row whose first-name
/// field is empty; `None` for any other form (`"van der Berg"` is one family
/// name).
pub fn split_family_first(last: &str) -> Option<(&str, &str)> {
    family_first(last)
}

/// A match key for a name: ASCII-folded, lowercase, apostrophes and dots
/// removed, other punctuation turned into spaces, leading titles (Mr, Mrs,
/// Ms, Dr, Prof, ...) and trailing suffixes (Jr, Sr, II, III, PhD, MD, ...)
/// dropped. "Dr. José O'Brien-Smith Jr." -> "jose obrien smith". Returns
/// `None` when nothing is left.
pub fn name_key(raw: &str) -> Option<String> {
    let mut cleaned = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_ascii() {
            push_key_char(c, &mut cleaned);
        } else {
            // Fold one character at a time so ASCII separators stay as they are.
            match deunicode::deunicode_char(c) {
                Some(folded) => folded.chars().for_each(|f| push_key_char(f, &mut cleaned)),
                None => cleaned.push(' '),
            }
        }
    }
    let mut tokens: Vec<&str> = cleaned.split_whitespace().collect();
    while tokens.len() > 1 && TITLES.contains(&tokens[0]) {
        tokens.remove(0);
    }
    while tokens.len() > 1 && SUFFIXES.contains(tokens.last().unwrap_or(&"")) {
        tokens.pop();
    }
    if tokens.is_empty() {
        None
    } else {
        Some(tokens.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_names_split_into_given_and_family() {
        assert_eq!(
            split_full_name("dorothy ann smith"),
            Some(("dorothy ann", "smith"))
        );
        assert_eq!(split_full_name(" Baker,  James "), Some(("James", "Baker")));
        assert_eq!(
            split_full_name("Baker, James T."),
            Some(("James T.", "Baker"))
        );
        assert_eq!(
            split_full_name("James Baker, Jr."),
            Some(("James", "Baker, Jr."))
        );
        assert_eq!(
            split_full_name("James Baker Jr"),
            Some(("James", "Baker Jr"))
        );
        assert_eq!(split_full_name("bob"), None);
        assert_eq!(split_full_name("Baker,"), None);
        assert_eq!(split_full_name(", James"), None);
        assert_eq!(split_full_name("Jr."), None);
        assert_eq!(
            split_family_first("Lockinglow, Dan"),
            Some(("Dan", "Lockinglow"))
        );
        assert_eq!(split_family_first("van der Berg"), None);
        assert_eq!(split_family_first("Baker, Jr."), None);
    }

    #[test]
    fn cleans_whitespace_and_keeps_mixed_case() {
        assert_eq!(clean_name("  Ann   Lee\t").as_deref(), Some("Ann Lee"));
        assert_eq!(clean_name("deShawn").as_deref(), Some("deShawn"));
        assert_eq!(clean_name("McDonald").as_deref(), Some("McDonald"));
        assert_eq!(clean_name("   ").as_deref(), None);
        assert_eq!(clean_name("a\u{1f}b").as_deref(), Some("A B"));
        assert_eq!(clean_name("ß").as_deref(), Some("ß"));
    }

    #[test]
    fn proper_cases_all_upper_or_all_lower() {
        assert_eq!(
            clean_name("MARY-ANN O'BRIEN").as_deref(),
            Some("Mary-Ann O'Brien")
        );
        assert_eq!(clean_name("mcdonald").as_deref(), Some("McDonald"));
        assert_eq!(
            clean_name("jan van der berg").as_deref(),
            Some("Jan van der Berg")
        );
        assert_eq!(clean_name("VAN DER BERG").as_deref(), Some("Van der Berg"));
        assert_eq!(clean_name("ÉLODIE").as_deref(), Some("Élodie"));
        assert_eq!(
            clean_name("john smith iii").as_deref(),
            Some("John Smith III")
        );
    }

    #[test]
    fn composes_to_nfc() {
        let decomposed = "Jose\u{301}";
        assert_eq!(clean_name(decomposed).as_deref(), Some("Jos\u{e9}"));
    }

    #[test]
    fn keys_fold_titles_suffixes_and_punctuation() {
        assert_eq!(
            name_key("Dr. José O'Brien-Smith Jr.").as_deref(),
            Some("jose obrien smith")
        );
        assert_eq!(name_key("MRS  ann   LEE, PhD").as_deref(), Some("ann lee"));
        assert_eq!(name_key("Müller").as_deref(), Some("muller"));
        assert_eq!(name_key("Dr").as_deref(), Some("dr"));
        assert_eq!(name_key(" - ").as_deref(), None);
    }
}
