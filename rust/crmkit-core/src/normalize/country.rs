//! Countries: ISO 3166-1 alpha-2 codes from codes, names and common variants.

use std::collections::HashMap;
use std::sync::OnceLock;

/// ISO 3166-1: alpha-2, alpha-3, English short name.
const COUNTRIES: &[(&str, &str, &str)] = &[
    ("AD", "AND", "Andorra"),
    ("AE", "ARE", "United Arab Emirates"),
    ("AF", "AFG", "Afghanistan"),
    ("AG", "ATG", "Antigua and Barbuda"),
    ("AI", "AIA", "Anguilla"),
    ("AL", "ALB", "Albania"),
    ("AM", "ARM", "Armenia"),
    ("AO", "AGO", "Angola"),
    ("AQ", "ATA", "Antarctica"),
    ("AR", "ARG", "Argentina"),
    ("AS", "ASM", "American Samoa"),
    ("AT", "AUT", "Austria"),
    ("AU", "AUS", "Australia"),
    ("AW", "ABW", "Aruba"),
    ("AX", "ALA", "Aland Islands"),
    ("AZ", "AZE", "Azerbaijan"),
    ("BA", "BIH", "Bosnia and Herzegovina"),
    ("BB", "BRB", "Barbados"),
    ("BD", "BGD", "Bangladesh"),
    ("BE", "BEL", "Belgium"),
    ("BF", "BFA", "Burkina Faso"),
    ("BG", "BGR", "Bulgaria"),
    ("BH", "BHR", "Bahrain"),
    ("BI", "BDI", "Burundi"),
    ("BJ", "BEN", "Benin"),
    ("BL", "BLM", "Saint Barthelemy"),
    ("BM", "BMU", "Bermuda"),
    ("BN", "BRN", "Brunei Darussalam"),
    ("BO", "BOL", "Bolivia"),
    ("BQ", "BES", "Bonaire, Sint Eustatius and Saba"),
    ("BR", "BRA", "Brazil"),
    ("BS", "BHS", "Bahamas"),
    ("BT", "BTN", "Bhutan"),
    ("BV", "BVT", "Bouvet Island"),
    ("BW", "BWA", "Botswana"),
    ("BY", "BLR", "Belarus"),
    ("BZ", "BLZ", "Belize"),
    ("CA", "CAN", "Canada"),
    ("CC", "CCK", "Cocos (Keeling) Islands"),
    ("CD", "COD", "Democratic Republic of the Congo"),
    ("CF", "CAF", "Central African Republic"),
    ("CG", "COG", "Congo"),
    ("CH", "CHE", "Switzerland"),
    ("CI", "CIV", "Cote d'Ivoire"),
    ("CK", "COK", "Cook Islands"),
    ("CL", "CHL", "Chile"),
    ("CM", "CMR", "Cameroon"),
    ("CN", "CHN", "China"),
    ("CO", "COL", "Colombia"),
    ("CR", "CRI", "Costa Rica"),
    ("CU", "CUB", "Cuba"),
    ("CV", "CPV", "Cabo Verde"),
    ("CW", "CUW", "Curacao"),
    ("CX", "CXR", "Christmas Island"),
    ("CY", "CYP", "Cyprus"),
    ("CZ", "CZE", "Czechia"),
    ("DE", "DEU", "Germany"),
    ("DJ", "DJI", "Djibouti"),
    ("DK", "DNK", "Denmark"),
    ("DM", "DMA", "Dominica"),
    ("DO", "DOM", "Dominican Republic"),
    ("DZ", "DZA", "Algeria"),
    ("EC", "ECU", "Ecuador"),
    ("EE", "EST", "Estonia"),
    ("EG", "EGY", "Egypt"),
    ("EH", "ESH", "Western Sahara"),
    ("ER", "ERI", "Eritrea"),
    ("ES", "ESP", "Spain"),
    ("ET", "ETH", "Ethiopia"),
    ("FI", "FIN", "Finland"),
    ("FJ", "FJI", "Fiji"),
    ("FK", "FLK", "Falkland Islands"),
    ("FM", "FSM", "Micronesia"),
    ("FO", "FRO", "Faroe Islands"),
    ("FR", "FRA", "France"),
    ("GA", "GAB", "Gabon"),
    ("GB", "GBR", "United Kingdom"),
    ("GD", "GRD", "Grenada"),
    ("GE", "GEO", "Georgia"),
    ("GF", "GUF", "French Guiana"),
    ("GG", "GGY", "Guernsey"),
    ("GH", "GHA", "Ghana"),
    ("GI", "GIB", "Gibraltar"),
    ("GL", "GRL", "Greenland"),
    ("GM", "GMB", "Gambia"),
    ("GN", "GIN", "Guinea"),
    ("GP", "GLP", "Guadeloupe"),
    ("GQ", "GNQ", "Equatorial Guinea"),
    ("GR", "GRC", "Greece"),
    ("GS", "SGS", "South Georgia and the South Sandwich Islands"),
    ("GT", "GTM", "Guatemala"),
    ("GU", "GUM", "Guam"),
    ("GW", "GNB", "Guinea-Bissau"),
    ("GY", "GUY", "Guyana"),
    ("HK", "HKG", "Hong Kong"),
    ("HM", "HMD", "Heard Island and McDonald Islands"),
    ("HN", "HND", "Honduras"),
    ("HR", "HRV", "Croatia"),
    ("HT", "HTI", "Haiti"),
    ("HU", "HUN", "Hungary"),
    ("ID", "IDN", "Indonesia"),
    ("IE", "IRL", "Ireland"),
    ("IL", "ISR", "Israel"),
    ("IM", "IMN", "Isle of Man"),
    ("IN", "IND", "India"),
    ("IO", "IOT", "British Indian Ocean Territory"),
    ("IQ", "IRQ", "Iraq"),
    ("IR", "IRN", "Iran"),
    ("IS", "ISL", "Iceland"),
    ("IT", "ITA", "Italy"),
    ("JE", "JEY", "Jersey"),
    ("JM", "JAM", "Jamaica"),
    ("JO", "JOR", "Jordan"),
    ("JP", "JPN", "Japan"),
    ("KE", "KEN", "Kenya"),
    ("KG", "KGZ", "Kyrgyzstan"),
    ("KH", "KHM", "Cambodia"),
    ("KI", "KIR", "Kiribati"),
    ("KM", "COM", "Comoros"),
    ("KN", "KNA", "Saint Kitts and Nevis"),
    ("KP", "PRK", "North Korea"),
    ("KR", "KOR", "South Korea"),
    ("KW", "KWT", "Kuwait"),
    ("KY", "CYM", "Cayman Islands"),
    ("KZ", "KAZ", "Kazakhstan"),
    ("LA", "LAO", "Laos"),
    ("LB", "LBN", "Lebanon"),
    ("LC", "LCA", "Saint Lucia"),
    ("LI", "LIE", "Liechtenstein"),
    ("LK", "LKA", "Sri Lanka"),
    ("LR", "LBR", "Liberia"),
    ("LS", "LSO", "Lesotho"),
    ("LT", "LTU", "Lithuania"),
    ("LU", "LUX", "Luxembourg"),
    ("LV", "LVA", "Latvia"),
    ("LY", "LBY", "Libya"),
    ("MA", "MAR", "Morocco"),
    ("MC", "MCO", "Monaco"),
    ("MD", "MDA", "Moldova"),
    ("ME", "MNE", "Montenegro"),
    ("MF", "MAF", "Saint Martin (French part)"),
    ("MG", "MDG", "Madagascar"),
    ("MH", "MHL", "Marshall Islands"),
    ("MK", "MKD", "North Macedonia"),
    ("ML", "MLI", "Mali"),
    ("MM", "MMR", "Myanmar"),
    ("MN", "MNG", "Mongolia"),
    ("MO", "MAC", "Macao"),
    ("MP", "MNP", "Northern Mariana Islands"),
    ("MQ", "MTQ", "Martinique"),
    ("MR", "MRT", "Mauritania"),
    ("MS", "MSR", "Montserrat"),
    ("MT", "MLT", "Malta"),
    ("MU", "MUS", "Mauritius"),
    ("MV", "MDV", "Maldives"),
    ("MW", "MWI", "Malawi"),
    ("MX", "MEX", "Mexico"),
    ("MY", "MYS", "Malaysia"),
    ("MZ", "MOZ", "Mozambique"),
    ("NA", "NAM", "Namibia"),
    ("NC", "NCL", "New Caledonia"),
    ("NE", "NER", "Niger"),
    ("NF", "NFK", "Norfolk Island"),
    ("NG", "NGA", "Nigeria"),
    ("NI", "NIC", "Nicaragua"),
    ("NL", "NLD", "Netherlands"),
    ("NO", "NOR", "Norway"),
    ("NP", "NPL", "Nepal"),
    ("NR", "NRU", "Nauru"),
    ("NU", "NIU", "Niue"),
    ("NZ", "NZL", "New Zealand"),
    ("OM", "OMN", "Oman"),
    ("PA", "PAN", "Panama"),
    ("PE", "PER", "Peru"),
    ("PF", "PYF", "French Polynesia"),
    ("PG", "PNG", "Papua New Guinea"),
    ("PH", "PHL", "Philippines"),
    ("PK", "PAK", "Pakistan"),
    ("PL", "POL", "Poland"),
    ("PM", "SPM", "Saint Pierre and Miquelon"),
    ("PN", "PCN", "Pitcairn"),
    ("PR", "PRI", "Puerto Rico"),
    ("PS", "PSE", "Palestine"),
    ("PT", "PRT", "Portugal"),
    ("PW", "PLW", "Palau"),
    ("PY", "PRY", "Paraguay"),
    ("QA", "QAT", "Qatar"),
    ("RE", "REU", "Reunion"),
    ("RO", "ROU", "Romania"),
    ("RS", "SRB", "Serbia"),
    ("RU", "RUS", "Russia"),
    ("RW", "RWA", "Rwanda"),
    ("SA", "SAU", "Saudi Arabia"),
    ("SB", "SLB", "Solomon Islands"),
    ("SC", "SYC", "Seychelles"),
    ("SD", "SDN", "Sudan"),
    ("SE", "SWE", "Sweden"),
    ("SG", "SGP", "Singapore"),
    ("SH", "SHN", "Saint Helena, Ascension and Tristan da Cunha"),
    ("SI", "SVN", "Slovenia"),
    ("SJ", "SJM", "Svalbard and Jan Mayen"),
    ("SK", "SVK", "Slovakia"),
    ("SL", "SLE", "Sierra Leone"),
    ("SM", "SMR", "San Marino"),
    ("SN", "SEN", "Senegal"),
    ("SO", "SOM", "Somalia"),
    ("SR", "SUR", "Suriname"),
    ("SS", "SSD", "South Sudan"),
    ("ST", "STP", "Sao Tome and Principe"),
    ("SV", "SLV", "El Salvador"),
    ("SX", "SXM", "Sint Maarten (Dutch part)"),
    ("SY", "SYR", "Syria"),
    ("SZ", "SWZ", "Eswatini"),
    ("TC", "TCA", "Turks and Caicos Islands"),
    ("TD", "TCD", "Chad"),
    ("TF", "ATF", "French Southern Territories"),
    ("TG", "TGO", "Togo"),
    ("TH", "THA", "Thailand"),
    ("TJ", "TJK", "Tajikistan"),
    ("TK", "TKL", "Tokelau"),
    ("TL", "TLS", "Timor-Leste"),
    ("TM", "TKM", "Turkmenistan"),
    ("TN", "TUN", "Tunisia"),
    ("TO", "TON", "Tonga"),
    ("TR", "TUR", "Turkey"),
    ("TT", "TTO", "Trinidad and Tobago"),
    ("TV", "TUV", "Tuvalu"),
    ("TW", "TWN", "Taiwan"),
    ("TZ", "TZA", "Tanzania"),
    ("UA", "UKR", "Ukraine"),
    ("UG", "UGA", "Uganda"),
    ("UM", "UMI", "United States Minor Outlying Islands"),
    ("US", "USA", "United States"),
    ("UY", "URY", "Uruguay"),
    ("UZ", "UZB", "Uzbekistan"),
    ("VA", "VAT", "Holy See"),
    ("VC", "VCT", "Saint Vincent and the Grenadines"),
    ("VE", "VEN", "Venezuela"),
    ("VG", "VGB", "British Virgin Islands"),
    ("VI", "VIR", "United States Virgin Islands"),
    ("VN", "VNM", "Viet Nam"),
    ("VU", "VUT", "Vanuatu"),
    ("WF", "WLF", "Wallis and Futuna"),
    ("WS", "WSM", "Samoa"),
    ("YE", "YEM", "Yemen"),
    ("YT", "MYT", "Mayotte"),
    ("ZA", "ZAF", "South Africa"),
    ("ZM", "ZMB", "Zambia"),
    ("ZW", "ZWE", "Zimbabwe"),
];

/// Other names and spellings seen in exports, by alpha-2 code. Keys are
/// compared after the same folding as the input (see [`country_key`]).
const VARIANTS: &[(&str, &str)] = &[
    ("united states of america", "US"),
    ("us", "US"),
    ("usa", "US"),
    ("u s", "US"),
    ("u s a", "US"),
    ("america", "US"),
    ("vereinigte staaten", "US"),
    ("etats unis", "US"),
    ("estados unidos", "US"),
    ("uk", "GB"),
    ("u k", "GB"),
    ("great britain", "GB"),
    ("britain", "GB"),
    ("england", "GB"),
    ("scotland", "GB"),
    ("wales", "GB"),
    ("northern ireland", "GB"),
    ("united kingdom of great britain and northern ireland", "GB"),
    ("grossbritannien", "GB"),
    ("deutschland", "DE"),
    ("federal republic of germany", "DE"),
    ("allemagne", "DE"),
    ("alemania", "DE"),
    ("germania", "DE"),
    ("frankreich", "FR"),
    ("francia", "FR"),
    ("espana", "ES"),
    ("spanien", "ES"),
    ("espagne", "ES"),
    ("italia", "IT"),
    ("italien", "IT"),
    ("italie", "IT"),
    ("osterreich", "AT"),
    ("oesterreich", "AT"),
    ("autriche", "AT"),
    ("schweiz", "CH"),
    ("suisse", "CH"),
    ("svizzera", "CH"),
    ("nederland", "NL"),
    ("the netherlands", "NL"),
    ("holland", "NL"),
    ("niederlande", "NL"),
    ("pays bas", "NL"),
    ("belgie", "BE"),
    ("belgique", "BE"),
    ("belgien", "BE"),
    ("danmark", "DK"),
    ("danemark", "DK"),
    ("sverige", "SE"),
    ("schweden", "SE"),
    ("norge", "NO"),
    ("norwegen", "NO"),
    ("suomi", "FI"),
    ("finnland", "FI"),
    ("polska", "PL"),
    ("polen", "PL"),
    ("cesko", "CZ"),
    ("czech republic", "CZ"),
    ("tschechien", "CZ"),
    ("magyarorszag", "HU"),
    ("ungarn", "HU"),
    ("portugal", "PT"),
    ("eire", "IE"),
    ("republic of ireland", "IE"),
    ("irland", "IE"),
    ("ellada", "GR"),
    ("hellas", "GR"),
    ("griechenland", "GR"),
    ("turkiye", "TR"),
    ("turkei", "TR"),
    ("russian federation", "RU"),
    ("russland", "RU"),
    ("rossiya", "RU"),
    ("brasil", "BR"),
    ("brasilien", "BR"),
    ("mexiko", "MX"),
    ("kanada", "CA"),
    ("australien", "AU"),
    ("nz", "NZ"),
    ("aotearoa", "NZ"),
    ("nippon", "JP"),
    ("nihon", "JP"),
    ("japan", "JP"),
    ("peoples republic of china", "CN"),
    ("prc", "CN"),
    ("zhongguo", "CN"),
    ("republic of korea", "KR"),
    ("korea", "KR"),
    ("korea republic of", "KR"),
    ("korea south", "KR"),
    ("democratic peoples republic of korea", "KP"),
    ("korea north", "KP"),
    ("bharat", "IN"),
    ("uae", "AE"),
    ("u a e", "AE"),
    ("emirates", "AE"),
    ("ksa", "SA"),
    ("kingdom of saudi arabia", "SA"),
    ("south africa", "ZA"),
    ("rsa", "ZA"),
    ("republic of south africa", "ZA"),
    ("vietnam", "VN"),
    ("viet nam", "VN"),
    ("lao pdr", "LA"),
    ("burma", "MM"),
    ("ivory coast", "CI"),
    ("cote divoire", "CI"),
    ("cape verde", "CV"),
    ("swaziland", "SZ"),
    ("east timor", "TL"),
    ("macedonia", "MK"),
    ("republic of north macedonia", "MK"),
    ("moldova republic of", "MD"),
    ("republic of moldova", "MD"),
    ("iran islamic republic of", "IR"),
    ("islamic republic of iran", "IR"),
    ("syrian arab republic", "SY"),
    ("tanzania united republic of", "TZ"),
    ("united republic of tanzania", "TZ"),
    ("bolivia plurinational state of", "BO"),
    ("venezuela bolivarian republic of", "VE"),
    ("brunei", "BN"),
    ("dr congo", "CD"),
    ("drc", "CD"),
    ("congo kinshasa", "CD"),
    ("congo democratic republic of the", "CD"),
    ("congo brazzaville", "CG"),
    ("republic of the congo", "CG"),
    ("vatican", "VA"),
    ("vatican city", "VA"),
    ("macau", "MO"),
    ("hong kong sar", "HK"),
    ("taiwan province of china", "TW"),
    ("republic of china", "TW"),
    ("palestine state of", "PS"),
    ("micronesia federated states of", "FM"),
    ("st kitts and nevis", "KN"),
    ("st lucia", "LC"),
    ("st vincent and the grenadines", "VC"),
    ("trinidad", "TT"),
    ("bosnia", "BA"),
    ("czech", "CZ"),
    ("slovak republic", "SK"),
    ("curacao", "CW"),
    ("reunion", "RE"),
    ("the bahamas", "BS"),
    ("the gambia", "GM"),
    ("us virgin islands", "VI"),
    ("virgin islands us", "VI"),
    ("virgin islands british", "VG"),
    ("falkland islands malvinas", "FK"),
];

/// Fold a country value for lookup: ASCII, lowercase, punctuation removed
/// (dots and apostrophes vanish, other punctuation becomes a space), a
/// leading "the" dropped, whitespace collapsed.
pub fn country_key(raw: &str) -> String {
    let mut s = String::with_capacity(raw.len());
    let mut push = |c: char| {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if c != '.' && c != '\'' {
            // "U.S." -> "us"; other punctuation separates words.
            s.push(' ');
        }
    };
    for c in raw.chars() {
        if c.is_ascii() {
            push(c);
        } else {
            match deunicode::deunicode_char(c) {
                Some(folded) => folded.chars().for_each(&mut push),
                None => push(' '),
            }
        }
    }
    let words: Vec<&str> = s.split_whitespace().collect();
    let words = match words.first() {
        Some(&"the") if words.len() > 1 => &words[1..],
        _ => &words[..],
    };
    words.join(" ")
}

fn table() -> &'static HashMap<String, &'static str> {
    static TABLE: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut m = HashMap::new();
        for (a2, a3, name) in COUNTRIES {
            m.insert(a2.to_ascii_lowercase(), *a2);
            m.insert(a3.to_ascii_lowercase(), *a2);
            m.insert(country_key(name), *a2);
        }
        for (k, a2) in VARIANTS {
            m.insert(country_key(k), *a2);
        }
        m
    })
}

/// Map a country code or name to its ISO 3166-1 alpha-2 code: "usa", "U.S.",
/// "United States of America", "Deutschland", "UK", "Great Britain", "gbr",
/// "de" ... Unknown values give `None` (callers keep the raw value).
pub fn normalize_country(raw: &str) -> Option<&'static str> {
    let t = raw.trim();
    if t.len() == 2 && t.is_ascii() {
        let mut k = t.to_ascii_lowercase();
        if k == "uk" {
            k = "gb".into();
        }
        return table().get(&k).copied();
    }
    let key = country_key(t);
    if key.is_empty() {
        return None;
    }
    table().get(&key).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_names_and_variants() {
        for (raw, want) in [
            ("US", "US"),
            ("us", "US"),
            ("USA", "US"),
            ("U.S.", "US"),
            ("U.S.A.", "US"),
            ("United States of America", "US"),
            ("  united   states ", "US"),
            ("Deutschland", "DE"),
            ("DEU", "DE"),
            ("UK", "GB"),
            ("Great Britain", "GB"),
            ("United Kingdom", "GB"),
            ("The Netherlands", "NL"),
            ("Côte d'Ivoire", "CI"),
            ("Österreich", "AT"),
            ("Korea, Republic of", "KR"),
            ("Guinea-Bissau", "GW"),
        ] {
            assert_eq!(normalize_country(raw), Some(want), "{raw:?}");
        }
    }

    #[test]
    fn unknown_is_none() {
        for raw in ["", "  ", "Atlantis", "XX", "U", "12"] {
            assert_eq!(normalize_country(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn table_has_unique_codes() {
        let mut a2: Vec<&str> = COUNTRIES.iter().map(|c| c.0).collect();
        a2.sort_unstable();
        a2.dedup();
        assert_eq!(a2.len(), COUNTRIES.len());
        assert_eq!(COUNTRIES.len(), 249);
        for (_, code) in VARIANTS {
            assert!(COUNTRIES.iter().any(|c| c.0 == *code), "{code}");
        }
    }
}
