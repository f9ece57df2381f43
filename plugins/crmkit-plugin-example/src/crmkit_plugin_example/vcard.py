"""The ``vcard`` source: contacts from vCard files (``.vcf``, versions 2.1, 3.0 and 4.0).

Reads ``FN``, ``N``, ``EMAIL``, ``TEL``, ``ORG``, ``TITLE``, ``ADR``, ``BDAY``,
``CATEGORIES`` and ``UID``. Handles folded lines, backslash escapes, grouped
properties (``item1.EMAIL``), ``TYPE``/``PREF`` preferences and vCard 2.1
quoted-printable values. Each contact carries the line number of its
``BEGIN:VCARD``; a card that cannot be read is rejected with its line and why.

Incremental: the state remembers, per file, how many bytes were read and a
hash of them. When a file only grew, a re-run reads only the new cards; when
it changed otherwise, it is read again from the start (the host upserts, so
this is safe).
"""

from __future__ import annotations

import hashlib
import quopri
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from crmkit.errors import SourceError
from crmkit.kinds import PluginConfig, PluginContext, Source, StreamInfo
from crmkit.records import Batch, Checkpoint, Reject

FIELDS: tuple[str, ...] = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "job_title",
    "street",
    "city",
    "region",
    "postcode",
    "country",
    "birth_date",
    "tags",
    "external_id",
    "other_emails",
    "other_phones",
)
"""The columns every batch of the ``vcard`` source has."""

MAX_CARD_BYTES = 1 << 20
"""A card larger than this (1 MiB, e.g. a huge embedded photo) is rejected."""

_HONORIFICS = {"mr", "mrs", "ms", "miss", "dr", "prof", "sir", "mx"}


class VCardConfig(PluginConfig):
    """Configuration of the ``vcard`` source."""

    path: str
    """A ``.vcf`` file, or a folder whose ``*.vcf`` files are read in name order."""
    encoding: str = "utf-8"
    """Text encoding of the files (vCard 3.0 and 4.0 are UTF-8)."""
    batch_size: int = 1000
    """Contacts per batch."""


class Card:
    """One parsed vCard: its properties, in order, as (name, params, value)."""

    def __init__(self, line: int) -> None:
        self.line = line
        self.props: list[tuple[str, dict[str, list[str]], str]] = []

    def all(self, name: str) -> list[tuple[dict[str, list[str]], str]]:
        """Every value of property ``name``, preferred ones first."""
        found = [(p, v) for n, p, v in self.props if n == name]
        return sorted(found, key=lambda pv: _pref_rank(pv[0]))

    def first(self, name: str) -> str | None:
        """The preferred value of ``name``, or ``None``."""
        vals = self.all(name)
        return vals[0][1] if vals else None


def _pref_rank(params: Mapping[str, list[str]]) -> int:
    """Lower is more preferred: ``PREF=1`` (4.0), ``TYPE=pref`` (3.0) or bare ``PREF`` (2.1)."""
    if "PREF" in params:
        try:
            return int(params["PREF"][0]) if params["PREF"] and params["PREF"][0] else 1
        except ValueError:
            return 1
    if any(t.lower() == "pref" for t in params.get("TYPE", [])):
        return 1
    return 100


def split_unescaped(value: str, sep: str) -> list[str]:
    """Split ``value`` on ``sep`` where it is not escaped by a backslash."""
    out, cur, i = [], [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            cur.append(value[i : i + 2])
            i += 2
            continue
        if ch == sep:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    out.append("".join(cur))
    return out


def unescape(value: str) -> str:
    r"""Undo vCard text escapes: ``\n``, ``\,``, ``\;``, ``\\``."""
    if "\\" not in value:
        return value
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append("\n" if nxt in "nN" else nxt)
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _parse_params(parts: list[str]) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for part in parts:
        if not part:
            continue
        if "=" in part:
            key, _, val = part.partition("=")
            vals = [v.strip('"') for v in split_unescaped(val, ",")]
            params.setdefault(key.strip().upper(), []).extend(vals)
        else:  # vCard 2.1: bare type (``TEL;CELL;PREF:``) or encoding
            bare = part.strip().upper()
            if bare == "PREF":
                params.setdefault("PREF", []).append("")
            elif bare in {"QUOTED-PRINTABLE", "BASE64", "8BIT", "7BIT"}:
                params.setdefault("ENCODING", []).append(bare)
            else:
                params.setdefault("TYPE", []).append(bare.lower())
    return params


def parse_property(line: str) -> tuple[str, dict[str, list[str]], str]:
    """``[group.]NAME[;param...]:value`` -> (NAME, params, raw value). Raises ``ValueError``."""
    # The first ':' outside a quoted parameter value ends the name and parameters.
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == ":" and not quoted:
            head, value = line[:i], line[i + 1 :]
            break
    else:
        raise ValueError("property without ':'")
    parts = split_unescaped(head, ";")
    name = parts[0].rsplit(".", 1)[-1].strip().upper()
    if not name:
        raise ValueError("property without a name")
    return name, _parse_params(parts[1:]), value


def _decode_value(params: Mapping[str, list[str]], value: str, encoding: str) -> str:
    if any(e.upper() == "QUOTED-PRINTABLE" for e in params.get("ENCODING", [])):
        charset = (params.get("CHARSET") or [encoding])[0]
        raw = quopri.decodestring(value.encode("latin-1", "replace"))
        try:
            return raw.decode(charset, "replace")
        except LookupError:
            return raw.decode(encoding, "replace")
    return value


def iter_logical_lines(text: str, first_line: int = 1) -> Iterator[tuple[int, str]]:
    """Unfold ``text`` into (physical line number where it starts, logical line).

    RFC 6350 folding (a line starting with a space or tab continues the one
    before) and vCard 2.1 quoted-printable soft breaks (a value ending in ``=``
    continues on the next line) are both undone.
    """
    cur: str | None = None
    start = first_line
    qp_soft = False
    for n, raw in enumerate(text.split("\n"), first_line):
        raw = raw.removesuffix("\r")
        if cur is not None and (qp_soft or raw[:1] in (" ", "\t")):
            cur = cur[:-1] + raw.lstrip(" \t") if qp_soft else cur + raw[1:]
        else:
            if cur is not None:
                yield start, cur
            cur, start = raw, n
        qp_soft = cur.endswith("=") and "QUOTED-PRINTABLE" in cur.split(":", 1)[0].upper()
    if cur is not None:
        yield start, cur


def parse_cards(text: str, encoding: str = "utf-8", first_line: int = 1) -> Iterator[Card | Reject]:
    """Every card in ``text`` as a :class:`Card`, or a :class:`Reject` saying why not."""
    card: Card | None = None
    error: str | None = None
    size = 0
    for n, line in iter_logical_lines(text, first_line):
        stripped = line.strip()
        upper = stripped.upper()
        if card is None:
            if upper == "BEGIN:VCARD":
                card, error, size = Card(n), None, 0
            elif stripped:
                yield Reject(
                    file=None, line=n, reason="text outside of a BEGIN:VCARD ... END:VCARD card"
                )
            continue
        if upper == "END:VCARD":
            if error is not None:
                yield Reject(file=None, line=card.line, reason=error)
            else:
                yield card
            card = None
            continue
        if upper == "BEGIN:VCARD":
            yield Reject(file=None, line=card.line, reason="card has no END:VCARD")
            card, error, size = Card(n), None, 0
            continue
        if not stripped or error is not None:
            continue
        size += len(line)
        if size > MAX_CARD_BYTES:
            error = f"card is larger than {MAX_CARD_BYTES} bytes"
            continue
        try:
            name, params, value = parse_property(line)
        except ValueError as exc:
            error = f"line {n}: {exc}"
            continue
        card.props.append((name, params, _decode_value(params, value, encoding)))
    if card is not None:
        yield Reject(file=None, line=card.line, reason="card has no END:VCARD")


def card_to_row(card: Card) -> dict[str, Any] | str:
    """The contact columns of ``card``, or the reason it holds no contact."""
    row: dict[str, Any] = dict.fromkeys(FIELDS)
    n = card.first("N")
    if n is not None:
        parts = [unescape(p).strip() for p in split_unescaped(n, ";")] + [""] * 5
        family, given = parts[0], parts[1]
        row["last_name"] = family or None
        row["first_name"] = given or None
    fn = card.first("FN")
    full = unescape(fn).strip() if fn is not None else ""
    if row["first_name"] is None and row["last_name"] is None and full:
        words = [w for w in full.split() if w.lower().rstrip(".") not in _HONORIFICS]
        if len(words) == 1:
            row["first_name"] = words[0]
        elif words:
            row["first_name"], row["last_name"] = " ".join(words[:-1]), words[-1]
    emails = _uniq(unescape(v).strip() for _, v in card.all("EMAIL"))
    phones = _uniq(_tel(v) for _, v in card.all("TEL"))
    row["email"] = emails[0] if emails else None
    row["other_emails"] = emails[1:]
    row["phone"] = phones[0] if phones else None
    row["other_phones"] = phones[1:]
    org = card.first("ORG")
    if org is not None:
        row["company"] = unescape(split_unescaped(org, ";")[0]).strip() or None
    title = card.first("TITLE")
    row["job_title"] = (unescape(title).strip() or None) if title is not None else None
    adr = card.first("ADR")
    if adr is not None:
        # PO box; extended; street; locality; region; postal code; country
        a = [unescape(p).strip() for p in split_unescaped(adr, ";")] + [""] * 7
        street = ", ".join(p for p in (a[2], a[1], a[0]) if p)
        for key, val in zip(
            ("street", "city", "region", "postcode", "country"),
            (street, a[3], a[4], a[5], a[6]),
            strict=True,
        ):
            row[key] = val.replace("\n", ", ") or None
    bday = card.first("BDAY")
    if bday is not None:
        row["birth_date"] = _date(bday.strip())
    cats = [unescape(c).strip() for _, v in card.all("CATEGORIES") for c in split_unescaped(v, ",")]
    row["tags"] = _uniq(c for c in cats if c)
    uid = card.first("UID")
    row["external_id"] = (unescape(uid).strip() or None) if uid is not None else None
    if not (row["email"] or row["phone"] or row["first_name"] or row["last_name"]):
        return "card has no name, email or phone"
    return row


def _tel(value: str) -> str:
    v = unescape(value).strip()
    return v[4:] if v.lower().startswith("tel:") else v


def _date(value: str) -> str | None:
    """A vCard date (``19850412``, ``1985-04-12``, ``1985-04-12T00:00:00Z``) as ISO ``YYYY-MM-DD``."""
    v = value.split("T", 1)[0].replace("-", "")
    if len(v) == 8 and v.isdigit():
        return f"{v[:4]}-{v[4:6]}-{v[6:]}"
    return None


def _uniq(values: Any) -> list[str]:
    seen: dict[str, None] = {}
    for v in values:
        if v and v not in seen:
            seen[v] = None
    return list(seen)


class VCardSource(Source):
    """Contacts from vCard (``.vcf``) files: a file, or every ``.vcf`` in a folder."""

    name = "vcard"
    description = "Contacts from vCard (.vcf) files."
    Config: ClassVar[type[PluginConfig]] = VCardConfig

    config: VCardConfig

    def __init__(self, config: PluginConfig, context: PluginContext) -> None:
        super().__init__(config, context)
        self.path = context.resolve(self.config.path)

    def files(self) -> list[Path]:
        """The files this source reads, in order."""
        if self.path.is_dir():
            return sorted(
                p for p in self.path.iterdir() if p.suffix.lower() == ".vcf" and p.is_file()
            )
        return [self.path]

    def check(self) -> None:
        """Raise :class:`SourceError` when the path is missing or holds no ``.vcf`` file."""
        if not self.path.exists():
            raise SourceError(f"vcard: {str(self.path)!r} does not exist")
        if not self.files():
            raise SourceError(f"vcard: no .vcf file in {str(self.path)!r}")
        if self.config.batch_size < 1:
            raise SourceError("vcard: batch_size must be at least 1")
        try:
            "".encode(self.config.encoding)
        except LookupError:
            raise SourceError(f"vcard: unknown encoding {self.config.encoding!r}") from None

    def discover(self) -> list[StreamInfo]:
        """One contacts stream per file, with how many cards it holds."""
        out = []
        for f in self.files():
            data = f.read_bytes()
            out.append(
                StreamInfo(
                    kind="contacts",
                    fields=FIELDS,
                    file=str(f),
                    format="vcard",
                    encoding=self.config.encoding,
                    rows=data.upper().count(b"BEGIN:VCARD"),
                )
            )
        return out

    def read(self, state: Mapping[str, Any] | None) -> Iterator[Batch | Checkpoint]:
        """Batches of contacts, then a checkpoint after each file."""
        self.check()
        files_state: dict[str, Any] = dict((state or {}).get("files", {}))
        for f in self.files():
            key = f.name if self.path.is_dir() else str(self.config.path)
            data = f.read_bytes()
            offset, line = 0, 1
            prev = files_state.get(key)
            if isinstance(prev, dict):
                p_off, p_hash, p_line = prev.get("offset"), prev.get("sha256"), prev.get("line")
                if (
                    isinstance(p_off, int)
                    and isinstance(p_line, int)
                    and 0 < p_off <= len(data)
                    and hashlib.sha256(data[:p_off]).hexdigest() == p_hash
                ):
                    offset, line = p_off, p_line
            # Read only whole cards: stop after the last END:VCARD line.
            end = _end_of_last_card(data, offset)
            if end > offset:
                yield from self._batches(f, data[offset:end], line)
                line += data[offset:end].count(b"\n")
            files_state[key] = {
                "offset": end,
                "sha256": hashlib.sha256(data[:end]).hexdigest(),
                "line": line,
            }
            yield Checkpoint(state={"files": dict(files_state)})

    def _batches(self, f: Path, chunk: bytes, first_line: int) -> Iterator[Batch]:
        try:
            text = chunk.decode(self.config.encoding)
        except UnicodeDecodeError as exc:
            raise SourceError(
                f"vcard: {f.name}: not valid {self.config.encoding} at byte {exc.start}"
            ) from None
        text = text.removeprefix("\ufeff")
        rows: list[dict[str, Any]] = []
        lines: list[int] = []
        rejects: list[Reject] = []
        for item in parse_cards(text, self.config.encoding, first_line):
            if isinstance(item, Reject):
                rejects.append(Reject(file=str(f), line=item.line, reason=item.reason))
                continue
            row = card_to_row(item)
            if isinstance(row, str):
                rejects.append(Reject(file=str(f), line=item.line, reason=row))
                continue
            rows.append(row)
            lines.append(item.line)
            if len(rows) >= self.config.batch_size:
                yield _batch(f, rows, lines, rejects)
                rows, lines, rejects = [], [], []
        if rows or rejects:
            yield _batch(f, rows, lines, rejects)


def _end_of_last_card(data: bytes, start: int) -> int:
    """Offset just past the last ``END:VCARD`` line at or after ``start`` (``start`` if none)."""
    upper = data.upper()
    idx = upper.rfind(b"END:VCARD", start)
    if idx < 0:
        return start
    nl = data.find(b"\n", idx)
    return len(data) if nl < 0 else nl + 1


def _batch(f: Path, rows: list[dict[str, Any]], lines: list[int], rejects: list[Reject]) -> Batch:
    columns = {field: [r[field] for r in rows] for field in FIELDS}
    return Batch(
        kind="contacts", columns=columns, lines=list(lines), file=str(f), rejects=list(rejects)
    )


__all__ = ["FIELDS", "VCardConfig", "VCardSource", "card_to_row", "parse_cards", "parse_property"]
