//! Postal codes.

/// Clean a postal code: trim, uppercase, collapse inner whitespace to one
/// space. With a country (ISO alpha-2) some shapes are fixed: US ZIP codes
/// become `12345` or `12345-6789` (a 4-digit ZIP that lost its leading zero
/// in a spreadsheet is padded), UK codes get their single space before the
/// inward code (`sw1a1aa` -> `SW1A 1AA`), Canadian ones too (`k1a0b1` ->
/// `K1A 0B1`), Dutch ones become `1234 AB`. Returns `None` for values that
/// cannot be a postal code (no digit or letter, characters other than
/// letters, digits, spaces and hyphens, or more than 12 characters).
pub fn normalize_postcode(raw: &str, country: Option<&str>) -> Option<String> {
    let mut cleaned = String::with_capacity(raw.len());
    for word in raw.split_whitespace() {
        if !cleaned.is_empty() {
            cleaned.push(' ');
        }
        cleaned.push_str(word);
    }
    let cleaned = cleaned.to_uppercase();
    if cleaned.is_empty()
        || cleaned.chars().count() > 12
        || !cleaned
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
        || !cleaned.chars().any(|c| c.is_ascii_alphanumeric())
    {
        return None;
    }
    let compact: String = cleaned
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let country = country.map(str::to_ascii_uppercase);
    match country.as_deref() {
        Some("US") => {
            if !compact.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            match compact.len() {
                4 => Some(format!("0{compact}")),
                5 => Some(compact),
                8 => Some(format!("0{}-{}", &compact[..4], &compact[4..])),
                9 => Some(format!("{}-{}", &compact[..5], &compact[5..])),
                _ => None,
            }
        }
        Some("GB") | Some("UK") | Some("GG") | Some("JE") | Some("IM") => {
            if (5..=7).contains(&compact.len()) && is_uk_shape(&compact) {
                let split = compact.len() - 3;
                Some(format!("{} {}", &compact[..split], &compact[split..]))
            } else {
                None
            }
        }
        Some("CA") => {
            let b = compact.as_bytes();
            let shape = b.len() == 6
                && b.iter().enumerate().all(|(i, c)| {
                    if i % 2 == 0 {
                        c.is_ascii_uppercase()
                    } else {
                        c.is_ascii_digit()
                    }
                });
            shape.then(|| format!("{} {}", &compact[..3], &compact[3..]))
        }
        Some("NL") => {
            let b = compact.as_bytes();
            let shape = b.len() == 6
                && b[..4].iter().all(u8::is_ascii_digit)
                && b[4..].iter().all(u8::is_ascii_uppercase);
            shape.then(|| format!("{} {}", &compact[..4], &compact[4..]))
        }
        Some("DE") | Some("FR") | Some("IT") | Some("ES") => {
            (compact.len() == 5 && compact.bytes().all(|b| b.is_ascii_digit())).then_some(compact)
        }
        _ => Some(cleaned),
    }
}

/// UK postcode shape on a compact uppercase value: an outward code of a
/// letter, then letters/digits (2-4 characters, with a digit), and an inward
/// code of a digit and two letters.
fn is_uk_shape(compact: &str) -> bool {
    let b = compact.as_bytes();
    let (out, inw) = b.split_at(b.len() - 3);
    inw[0].is_ascii_digit()
        && inw[1].is_ascii_uppercase()
        && inw[2].is_ascii_uppercase()
        && out[0].is_ascii_uppercase()
        && out.iter().any(u8::is_ascii_digit)
}

/// A match key for a postal code: the cleaned value without spaces or
/// hyphens, and for the US only the 5-digit ZIP (`12345-6789` -> `12345`).
pub fn postcode_key(raw: &str, country: Option<&str>) -> Option<String> {
    let clean = normalize_postcode(raw, country)?;
    let compact: String = clean.chars().filter(char::is_ascii_alphanumeric).collect();
    if country.is_some_and(|c| c.eq_ignore_ascii_case("US")) {
        return Some(compact[..5].to_string());
    }
    Some(compact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_cleaning() {
        assert_eq!(
            normalize_postcode("  ab12   3cd ", None).as_deref(),
            Some("AB12 3CD")
        );
        assert_eq!(
            normalize_postcode("1010", Some("AT")).as_deref(),
            Some("1010")
        );
        assert_eq!(normalize_postcode("", None), None);
        assert_eq!(normalize_postcode("--", None), None);
        assert_eq!(normalize_postcode("12#45", None), None);
    }

    #[test]
    fn country_shapes() {
        assert_eq!(
            normalize_postcode("sw1a1aa", Some("GB")).as_deref(),
            Some("SW1A 1AA")
        );
        assert_eq!(
            normalize_postcode("M1 1AE", Some("gb")).as_deref(),
            Some("M1 1AE")
        );
        assert_eq!(normalize_postcode("12345", Some("GB")), None);
        assert_eq!(
            normalize_postcode("2134", Some("US")).as_deref(),
            Some("02134")
        );
        assert_eq!(
            normalize_postcode("12345 6789", Some("US")).as_deref(),
            Some("12345-6789")
        );
        assert_eq!(normalize_postcode("123", Some("US")), None);
        assert_eq!(
            normalize_postcode("k1a0b1", Some("CA")).as_deref(),
            Some("K1A 0B1")
        );
        assert_eq!(
            normalize_postcode("1234ab", Some("NL")).as_deref(),
            Some("1234 AB")
        );
        assert_eq!(
            normalize_postcode("10115", Some("DE")).as_deref(),
            Some("10115")
        );
        assert_eq!(normalize_postcode("1011", Some("DE")), None);
    }

    #[test]
    fn keys() {
        assert_eq!(
            postcode_key("12345-6789", Some("US")).as_deref(),
            Some("12345")
        );
        assert_eq!(
            postcode_key("sw1a 1aa", Some("GB")).as_deref(),
            Some("SW1A1AA")
        );
    }
}
