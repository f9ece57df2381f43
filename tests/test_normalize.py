"""Bulk normalization in crmkit._core, checked against plain-Python oracles."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from crmkit import _core
from crmkit.errors import InvalidInputError

# -- oracles -----------------------------------------------------------------


def email_oracle(raw: str, strip_plus: bool, fold_gmail_dots: bool) -> str | None:
    s = raw.strip()
    if s.startswith("mailto:"):
        s = s[len("mailto:") :]
    s = s.strip("<> \t\n\r\x0b\x0c")
    if "@" not in s:
        return None
    local, domain = s.rsplit("@", 1)
    if not local or not domain or "@" in local or any(c.isspace() for c in s):
        return None
    domain = domain.rstrip(".").lower()
    if "." not in domain or domain.startswith(".") or ".." in domain:
        return None
    local = local.lower()
    if strip_plus and local.find("+") > 0:
        local = local[: local.find("+")]
    if fold_gmail_dots and domain in ("gmail.com", "googlemail.com"):
        local = local.replace(".", "")
        domain = "gmail.com"
        if not local:
            return None
    return f"{local}@{domain}"


TITLES = {"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam"}
SUFFIXES = {"jr", "sr", "ii", "iii", "iv", "phd", "md", "esq"}


def name_key_oracle(raw: str) -> str | None:
    folded = "".join(c for c in unicodedata.normalize("NFKD", raw) if not unicodedata.combining(c))
    cleaned = "".join(
        c.lower() if c.isascii() and c.isalnum() else ("" if c in ".'`" else " ") for c in folded
    )
    tokens = cleaned.split()
    while len(tokens) > 1 and tokens[0] in TITLES:
        tokens.pop(0)
    while len(tokens) > 1 and tokens[-1] in SUFFIXES:
        tokens.pop()
    return " ".join(tokens) or None


# -- emails ------------------------------------------------------------------

email_text = st.text(alphabet="abcXYZ.+@ -_<>1", max_size=20) | st.emails().map(
    lambda e: f"  {e.upper()} "
)


@given(st.lists(st.none() | email_text, max_size=30), st.booleans(), st.booleans())
def test_emails_match_the_oracle(values: list[str | None], strip: bool, fold: bool) -> None:
    got = _core.normalize_emails(values, strip_plus=strip, fold_gmail_dots=fold)
    want = [None if v is None else email_oracle(v, strip, fold) for v in values]
    assert got == want


# -- names -------------------------------------------------------------------

name_text = st.text(alphabet="abcdeABCDE '.-,éüñçÅ\t", max_size=24) | st.sampled_from(
    ["Dr. Ann Lee", "MR JOHN SMITH JR", "Prof. Ö'Neil, PhD", "ms", "Ann Lee III"]
)


@given(st.lists(st.none() | name_text, max_size=30))
def test_name_keys_match_the_oracle(values: list[str | None]) -> None:
    got = _core.name_keys(values)
    assert got == [None if v is None else name_key_oracle(v) for v in values]


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("  ann   LEE ", "ann LEE"),
        ("MARY-ANN O'BRIEN", "Mary-Ann O'Brien"),
        ("mcdonald", "McDonald"),
        ("jan van der berg", "Jan van der Berg"),
        ("McDonald", "McDonald"),
        ("ÉLODIE", "Élodie"),
        ("Jose\u0301", "Jos\u00e9"),
        ("   ", None),
        (None, None),
    ],
)
def test_clean_names(raw: str | None, want: str | None) -> None:
    assert _core.clean_names([raw]) == [want]


@given(st.lists(st.none() | st.text(max_size=20), max_size=20))
def test_clean_names_is_idempotent_and_trimmed(values: list[str | None]) -> None:
    once = _core.clean_names(values)
    assert _core.clean_names(once) == once
    for v in once:
        assert v is None or (v == v.strip() and "  " not in v and v != "")


# -- phones ------------------------------------------------------------------

REGIONS = ["US", "GB", "DE", "FR", "AU"]
# The Rust `phonenumber` crate ships libphonenumber 9.0.33 metadata; other versions
# of the Python package assign different number ranges.
PHONE_METADATA = "9.0.33"


@pytest.fixture(autouse=True)
def _same_phone_metadata(request: pytest.FixtureRequest) -> None:
    if "libphonenumber" in request.node.name:
        phonenumbers = pytest.importorskip("phonenumbers")
        if phonenumbers.__version__ != PHONE_METADATA:
            pytest.skip(f"needs phonenumbers=={PHONE_METADATA} (the crate's metadata)")


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(REGIONS),
    st.sampled_from(["FIXED_LINE", "MOBILE", "TOLL_FREE"]),
    st.text(alphabet="0123456789", min_size=4, max_size=4),
)
def test_phones_match_libphonenumber_on_valid_numbers(region: str, kind: str, tail: str) -> None:
    """Valid numbers made from each region's example numbers with random last digits,
    written in several shapes, give libphonenumber's E.164."""
    phonenumbers = pytest.importorskip("phonenumbers")
    example = phonenumbers.example_number_for_type(
        region, getattr(phonenumbers.PhoneNumberType, kind)
    )
    assume(example is not None)
    nsn = phonenumbers.national_significant_number(example)
    number = phonenumbers.parse(f"+{example.country_code}{nsn[:-4]}{tail}", None)
    assume(phonenumbers.is_valid_number(number))
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    intl = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    shapes = [e164, national, intl, "00" + e164[1:], f"{intl} ext. 12", f" ({national}) "]
    assert _core.normalize_phones(shapes, region) == [e164] * len(shapes)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(REGIONS), st.text(alphabet="0123456789", min_size=4, max_size=13))
@example(region="US", digits="1112012000000")
def test_phone_validity_agrees_with_libphonenumber(region: str, digits: str) -> None:
    """Where libphonenumber reads a valid number we give its E.164; we never give a
    number libphonenumber calls invalid (we also read "00" as an international
    prefix in every region, so we may find a number where it finds none).

    One difference by design: digits longer than the country code, the national
    prefix and the number together (``111 201 200 0000`` in the US, which
    libphonenumber reads by stripping the prefix again) are not guessed at."""
    phonenumbers = pytest.importorskip("phonenumbers")
    try:
        number = phonenumbers.parse(digits, region)
        valid = phonenumbers.is_valid_number(number)
    except phonenumbers.NumberParseException:
        valid = False
    got = _core.normalize_phones([digits], region)[0]
    if valid:
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        prefix = phonenumbers.ndd_prefix_for_region(region, True) or ""
        longest = len(e164) - 1 + len(prefix)
        if got is None and len(digits) > longest:
            return
        assert got == e164
    elif got is not None:
        assert digits.startswith("00")
        assert phonenumbers.is_valid_number(phonenumbers.parse(got, None))


def test_phone_shapes_and_errors() -> None:
    values = [
        "(202) 555-0143",
        "202.555.0143",
        "+1 202 555 0143",
        "001 202 555 0143",
        "202-555-0143 x123",
        "tel:202 555 0143;ext=4",
        "0044 20 7946 0958",
        "(555) 123-4567",
        "call me",
        None,
    ]
    assert _core.normalize_phones(values, "US") == [
        "+12025550143",
        "+12025550143",
        "+12025550143",
        "+12025550143",
        "+12025550143",
        "+12025550143",
        "+442079460958",
        None,
        None,
        None,
    ]
    with pytest.raises(InvalidInputError, match="ZZ"):
        _core.normalize_phones(["1"], "ZZ")


# -- countries and postcodes ---------------------------------------------------


def test_countries() -> None:
    values = ["USA", "U.S.", "United States of America", "Deutschland", "UK", "Great Britain"]
    assert _core.normalize_countries([*values, "Atlantis", None]) == [
        "US",
        "US",
        "US",
        "DE",
        "GB",
        "GB",
        None,
        None,
    ]


def test_postcodes() -> None:
    got = _core.normalize_postcodes(
        ["sw1a1aa", "2134", "12345 6789", " ab1  2cd ", "x#"], ["GB", "US", "US", None, None]
    )
    assert got == ["SW1A 1AA", "02134", "12345-6789", "AB1 2CD", None]
    with pytest.raises(InvalidInputError):
        _core.normalize_postcodes(["1"], [])


# -- the batch API ---------------------------------------------------------------


def test_contact_columns_normalize_known_fields_and_pass_others_through() -> None:
    company = ["Acme", None, "x"]
    cols: dict[str, list[str | None]] = {
        "email": ["Ann+x@GMail.com", "not-an-email", None],
        "phone": ["020 7946 0958", "(202) 555-0143", "12"],
        "first_name": ["ANN", "bob", " "],
        "last_name": ["o'brien", "Van Der Berg", None],
        "country": ["UK", "usa", "Narnia"],
        "postcode": ["sw1a1aa", "2134", "??"],
        "company": company,
    }
    out, issues = _core.normalize_contact_columns(
        cols, default_region="US", strip_plus=True, fold_gmail_dots=True
    )
    assert list(out) == list(cols)
    assert out["email"] == ["ann@gmail.com", None, None]
    # The row's country decides how a national phone number is read.
    assert out["phone"] == ["+442079460958", "+12025550143", None]
    assert out["first_name"] == ["Ann", "Bob", None]
    assert out["last_name"] == ["O'Brien", "Van Der Berg", None]
    assert out["country"] == ["GB", "US", None]
    assert out["postcode"] == ["SW1A 1AA", "02134", None]
    assert out["company"] is company
    assert issues == [
        (1, "email", "not an email address"),
        (2, "phone", "not a valid phone number"),
        (2, "country", "unknown country"),
        (2, "postcode", "not a postal code"),
    ]


@given(st.lists(st.none() | email_text, max_size=20))
def test_contact_columns_email_issues_are_exactly_the_dropped_values(
    values: list[str | None],
) -> None:
    out, issues = _core.normalize_contact_columns({"email": values})
    assert out["email"] == _core.normalize_emails(values)
    want = [
        (i, "email", "not an email address")
        for i, v in enumerate(values)
        if v is not None and v.strip() and email_oracle(v, False, False) is None
    ]
    assert issues == want


def test_contact_columns_reasons_hold_no_values() -> None:
    secret = "ann.secret@@example"
    _, issues = _core.normalize_contact_columns({"email": [secret], "phone": ["555-SECRET"]})
    assert issues
    for _, _, reason in issues:
        assert "secret" not in reason.lower()
        assert not re.search(r"\d{3}", reason)


def test_contact_columns_errors() -> None:
    with pytest.raises(InvalidInputError, match='"phone" has 1 values'):
        _core.normalize_contact_columns({"email": ["a@b.co", None], "phone": ["1"]})
    with pytest.raises(InvalidInputError, match="XX"):
        _core.normalize_contact_columns({"email": []}, default_region="XX")
    with pytest.raises(InvalidInputError, match='"email" must be a list of str'):
        _core.normalize_contact_columns({"email": [1]})  # type: ignore[list-item]


def test_unchanged_values_come_back_as_the_same_objects() -> None:
    email = "ann@example.com"
    upper = "ANN@EXAMPLE.COM"
    out, issues = _core.normalize_contact_columns(
        {"email": [email, upper, None], "country": ["France", "FR", "fr"]}
    )
    assert out["email"] == [email, email, None] and issues == []
    assert out["email"][0] is email and out["email"][1] is not upper
    assert out["country"] == ["FR", "FR", "FR"]
