//! Email normalization.

use crate::convert::is_py_space;

/// Options for [`normalize_email`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmailOptions {
    /// Drop a `+tag` from the local part (`ann+news@x.com` -> `ann@x.com`).
    pub strip_plus: bool,
    /// Remove dots from Gmail local parts and map googlemail.com to gmail.com.
    pub fold_gmail_dots: bool,
}

/// Normalize one email address: trim, lowercase, optional plus-tag and Gmail
/// dot folding. Returns `None` when the value is not an address
/// (no single `@`, empty local part or domain, whitespace or a control
/// character inside).
pub fn normalize_email(raw: &str, opts: EmailOptions) -> Option<String> {
    // Whitespace as Python's `str.strip` knows it, so that an email trimmed
    // by the importer and one trimmed here agree.
    let s = raw.trim_matches(is_py_space).trim_start_matches("mailto:");
    let s = s.trim_matches(|c: char| c == '<' || c == '>' || is_py_space(c));
    let (local, domain) = s.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() || local.contains('@') {
        return None;
    }
    if s.chars().any(|c| is_py_space(c) || c.is_control()) {
        return None;
    }
    let mut domain = domain.trim_end_matches('.').to_lowercase();
    if !domain.contains('.') || domain.starts_with('.') || domain.contains("..") {
        return None;
    }
    let mut local = local.to_lowercase();
    if opts.strip_plus {
        if let Some(i) = local.find('+') {
            if i > 0 {
                local.truncate(i);
            }
        }
    }
    if opts.fold_gmail_dots && (domain == "gmail.com" || domain == "googlemail.com") {
        local.retain(|c| c != '.');
        domain = "gmail.com".to_string();
        if local.is_empty() {
            return None;
        }
    }
    Some(format!("{local}@{domain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_as_python_does_and_refuses_control_characters() {
        let o = EmailOptions::default();
        assert_eq!(
            normalize_email("\u{1c}a@b.com\u{1f}", o).as_deref(),
            Some("a@b.com")
        );
        assert_eq!(normalize_email("0@0.\u{1c}", o), None);
        assert_eq!(normalize_email("a@b\u{1c}.com", o), None);
        assert_eq!(normalize_email("a@b.c\u{1}om", o), None);
    }

    #[test]
    fn lowercases_and_trims() {
        let o = EmailOptions::default();
        assert_eq!(
            normalize_email("  Ann.Lee@Example.COM ", o).as_deref(),
            Some("ann.lee@example.com")
        );
    }

    #[test]
    fn rejects_non_addresses() {
        let o = EmailOptions::default();
        for bad in [
            "",
            "ann",
            "@x.com",
            "ann@",
            "a b@x.com",
            "ann@localhost",
            "a@@x.com",
        ] {
            assert_eq!(normalize_email(bad, o), None, "{bad:?}");
        }
    }

    #[test]
    fn folds_plus_and_gmail_dots_when_asked() {
        let o = EmailOptions {
            strip_plus: true,
            fold_gmail_dots: true,
        };
        assert_eq!(
            normalize_email("A.n.N+promo@googlemail.com", o).as_deref(),
            Some("ann@gmail.com")
        );
        assert_eq!(
            normalize_email("a.nn+x@example.com", o).as_deref(),
            Some("a.nn@example.com")
        );
    }
}
