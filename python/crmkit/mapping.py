"""Column mapping: source headers to crmkit fields, presets, kind guessing and
typed conversion of custom attributes.

Header matching ignores case, spaces, underscores and punctuation, so
``First Name``, ``first_name`` and ``FirstName`` all map to ``first_name``.
A header that maps to no built-in field becomes a custom attribute named by
its slug (``Loyalty Tier`` → ``loyalty_tier``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from crmkit.records import AttributeType, RecordKind

_CONTACT_ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("email", "e-mail", "email address", "emailaddress", "mail", "primary email"),
    "first_name": ("first name", "firstname", "given name", "forename", "first"),
    "last_name": ("last name", "lastname", "surname", "family name", "last"),
    "phone": (
        "phone",
        "phone number",
        "telephone",
        "tel",
        "mobile",
        "mobile phone",
        "mobile phone number",
        "cell",
    ),
    "company": (
        "company",
        "company name",
        "organization",
        "organisation",
        "account name",
        "employer",
    ),
    "job_title": ("job title", "title", "position", "role"),
    "street": ("street", "street address", "address", "address line 1", "mailing street"),
    "city": ("city", "town", "mailing city"),
    "region": (
        "state",
        "region",
        "province",
        "state/region",
        "county",
        "mailing state/province",
        "state/province",
    ),
    "postcode": (
        "postcode",
        "postal code",
        "zip",
        "zip code",
        "zipcode",
        "post code",
        "mailing zip/postal code",
    ),
    "country": ("country", "country/region", "mailing country", "country code"),
    "birth_date": ("birth date", "birthdate", "date of birth", "dob", "birthday"),
    "lifecycle_stage": ("lifecycle stage", "lifecyclestage", "stage"),
    "tags": ("tags", "labels"),
    "external_id": ("external id", "id", "record id", "contact id", "customer id"),
}

_COMPANY_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "company", "company name", "account name", "organization"),
    "domain": ("domain", "company domain name", "website", "web site", "url"),
    "industry": ("industry", "sector"),
    "size": ("size", "employees", "number of employees", "headcount"),
    "country": ("country", "country/region", "billing country"),
    "external_id": ("external id", "id", "record id", "account id", "company id"),
}

_INTERACTION_ALIASES: dict[str, tuple[str, ...]] = {
    "contact_email": ("email", "contact email", "customer email", "e-mail"),
    "contact_external_id": ("contact id", "customer id", "contact external id", "record id"),
    "kind": ("kind", "type", "event", "event type", "activity type"),
    "channel": ("channel", "medium"),
    "occurred_at": (
        "occurred at",
        "occurredat",
        "timestamp",
        "time",
        "date",
        "created at",
        "event time",
    ),
    "amount": ("amount", "total", "value", "revenue", "price"),
    "subject": ("subject", "title", "description", "summary"),
    "external_id": ("id", "external id", "event id", "interaction id"),
}

PRESETS: dict[str, dict[str, str]] = {
    "hubspot": {
        "record id": "external_id",
        "first name": "first_name",
        "last name": "last_name",
        "email": "email",
        "phone number": "phone",
        "mobile phone number": "phone",
        "company name": "company",
        "job title": "job_title",
        "street address": "street",
        "city": "city",
        "state/region": "region",
        "postal code": "postcode",
        "country/region": "country",
        "lifecycle stage": "lifecycle_stage",
    },
    "salesforce": {
        "contact id": "external_id",
        "id": "external_id",
        "first name": "first_name",
        "last name": "last_name",
        "email": "email",
        "phone": "phone",
        "mobile": "phone",
        "account name": "company",
        "title": "job_title",
        "mailing street": "street",
        "mailing city": "city",
        "mailing state/province": "region",
        "mailing zip/postal code": "postcode",
        "mailing country": "country",
        "lead source": "lead_source",
    },
}
"""Header maps of common CRM exports (keys are lowercased headers)."""

_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "contacts": _CONTACT_ALIASES,
    "companies": _COMPANY_ALIASES,
    "interactions": _INTERACTION_ALIASES,
}


def squash(header: str) -> str:
    """A header reduced to lowercase letters and digits, for matching."""
    return re.sub(r"[^0-9a-z]+", "", header.lower())


def slug(header: str) -> str:
    """The attribute name for an unmapped header: lowercase snake case."""
    s = re.sub(r"[^0-9a-zA-Z]+", "_", header.strip()).strip("_").lower()
    if not s:
        return "column"
    return s if not s[0].isdigit() else f"c_{s}"


def _alias_index(kind: RecordKind) -> dict[str, str]:
    out: dict[str, str] = {}
    for field, aliases in _ALIASES[kind].items():
        out[squash(field)] = field
        for a in aliases:
            out.setdefault(squash(a), field)
    return out


def map_headers(
    headers: Sequence[str],
    kind: RecordKind,
    *,
    preset: str | None = None,
    overrides: Mapping[str, str] | None = None,
) -> list[str | None]:
    """The field each header maps to (``None`` to ignore the column).

    ``overrides`` maps a header (exactly as written) to a field, or to ``""``
    to ignore it. A preset's map wins over the generic aliases. When two headers
    map to the same built-in field, the first keeps it and the later ones
    become custom attributes named by their slugs.
    """
    overrides = dict(overrides or {})
    index = _alias_index(kind)
    pre = {squash(k): v for k, v in PRESETS.get(preset or "", {}).items()}
    out: list[str | None] = []
    used: set[str] = set()
    for h in headers:
        if h in overrides:
            target: str | None = overrides[h] or None
        else:
            target = pre.get(squash(h)) or index.get(squash(h)) or slug(h)
            if target in used:
                target = slug(h)
        if target is not None:
            if target in used:
                target = f"{target}_{len(out)}"
            used.add(target)
        out.append(target)
    return out


def guess_kind(headers: Sequence[str]) -> RecordKind:
    """Guess what a file holds from its headers."""
    sq = {squash(h) for h in headers}
    inter = _alias_index("interactions")
    hits = {inter[h] for h in sq if h in inter}
    if "kind" in hits and "occurred_at" in hits:
        return "interactions"
    contact_fields = {f for h in sq if (f := _alias_index("contacts").get(h))}
    if {"email", "first_name", "last_name", "phone"} & contact_fields:
        return "contacts"
    comp = {f for h in sq if (f := _alias_index("companies").get(h))}
    if "domain" in comp or ("name" in comp and "industry" in comp):
        return "companies"
    return "contacts"


# -- typed values ------------------------------------------------------------------

_TRUE = {"true", "yes", "y", "1", "t", "on", "x"}
_FALSE = {"false", "no", "n", "0", "f", "off", ""}
_INT = re.compile(r"^[+-]?\d{1,18}$")
_NUM = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def infer_type(values: Sequence[Any]) -> AttributeType:
    """The narrowest attribute type that every non-missing value fits."""
    seen = [v for v in values if v is not None and v != ""]
    if not seen:
        return "string"
    if all(isinstance(v, bool) for v in seen):
        return "boolean"
    if all(isinstance(v, list) for v in seen):
        return "list"
    strs = [str(v).strip() for v in seen]
    if all(_INT.match(s) for s in strs):
        return "integer"
    if all(_NUM.match(s) for s in strs):
        return "number"
    low = {s.lower() for s in strs}
    if low <= (_TRUE | _FALSE) and low & {"true", "false", "yes", "no"}:
        return "boolean"
    if all(_DATE.match(s) for s in strs):
        return "date"
    if all(_DATETIME.match(s) for s in strs):
        return "datetime"
    return "string"


def _integral(f: float) -> int:
    if not f.is_integer():
        raise ValueError("not integral")
    return int(f)


def convert(value: Any, typ: AttributeType, *, list_separator: str = ";") -> Any:
    """``value`` converted to ``typ``; raises ValueError with a reason (no value in it)."""
    if value is None:
        return None
    if typ == "string":
        return str(value)
    if typ == "list":
        if isinstance(value, list):
            return [str(v) for v in value]
        return [p.strip() for p in str(value).split(list_separator) if p.strip()]
    s = value.strip() if isinstance(value, str) else value
    if s == "":
        return None
    if typ == "integer":
        if isinstance(s, bool):
            raise ValueError("expected an integer")
        if isinstance(s, int):
            return s
        try:
            return int(s) if isinstance(s, str) else _integral(float(s))
        except (TypeError, ValueError, OverflowError):
            pass
        try:
            return _integral(float(s))
        except (TypeError, ValueError, OverflowError):
            raise ValueError("expected an integer") from None
    if typ == "number":
        try:
            return float(s)
        except (TypeError, ValueError):
            raise ValueError("expected a number") from None
    if typ == "boolean":
        if isinstance(s, bool):
            return s
        low = str(s).lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError("expected a boolean (yes/no, true/false)")
    if typ == "date":
        try:
            return date.fromisoformat(str(s)[:10]).isoformat()
        except ValueError:
            raise ValueError("expected a date (YYYY-MM-DD)") from None
    if typ == "datetime":
        try:
            d = datetime.fromisoformat(str(s).replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("expected a date-time (ISO 8601)") from None
        if d.tzinfo is None:
            d = d.replace(tzinfo=UTC)
        return d.astimezone(UTC).isoformat()
    raise ValueError(f"unknown type {typ}")


def clean_text_column(values: Sequence[Any]) -> list[str | None]:
    """Trimmed strings, ``None`` for missing or blank; other types as text."""
    return [(v.strip() or None) if v.__class__ is str else _text_of(v) for v in values]


def _text_of(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v.strip() or None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    import msgspec

    return msgspec.json.encode(v).decode()


def convert_column(
    values: Sequence[Any], typ: AttributeType, *, list_separator: str = ";"
) -> tuple[list[Any], list[tuple[int, str]]]:
    """A whole column converted to ``typ``, and ``(row, reason)`` for each value that
    does not fit (those become ``None``). Text values are converted in Rust; the
    few it leaves (bad values, rare forms, values that are not text) are
    converted here one by one with :func:`convert`, which names each reason."""
    if typ == "string":
        return clean_text_column(values), []
    from crmkit import _core

    vals = values if isinstance(values, list) else list(values)
    out, unsure = _core.convert_column(vals, typ, list_separator)
    errors: list[tuple[int, str]] = []
    for i in unsure:
        try:
            out[i] = convert(vals[i], typ, list_separator=list_separator)
        except ValueError as exc:
            errors.append((i, str(exc)))
    return out, errors
