"""The ``vcard`` source: crmkit's source conformance suite plus vCard parsing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import crmkit_plugin_example
import pytest
from crmkit_plugin_example.vcard import VCardSource, card_to_row, parse_cards

from crmkit.errors import SourceError
from crmkit.kinds import PluginContext
from crmkit.plugins import Registry
from crmkit.records import Batch, Checkpoint
from crmkit.testing.sources import SourceConformance

CARDS = """\
BEGIN:VCARD
VERSION:4.0
FN:Ada Lovelace
N:Lovelace;Ada;;Countess;
EMAIL;TYPE=work:ada@work.example
EMAIL;PREF=1:ada@home.example
TEL;TYPE=cell:+44 20 7946 0018
ORG:Analytical Engines Ltd;Research
TITLE:Mathematician
ADR;TYPE=home:;;12 St James\\, Square;London;;SW1Y 4JH;United Kingdom
BDAY:18151210
CATEGORIES:vip,pioneer
UID:urn:uuid:ada-1
END:VCARD
BEGIN:VCARD
VERSION:3.0
FN:Dr. Grace Brewster Hopper
EMAIL;TYPE=INTERNET:grace@navy.example
NOTE:Long note that is folded
 over two lines
END:VCARD
"""


def write(tmp_path: Path, text: str, name: str = "people.vcf") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def make_source(tmp_path: Path, **config: Any) -> VCardSource:
    cfg = VCardSource.Config.model_validate({"path": "people.vcf", **config})
    return VCardSource(cfg, PluginContext(base_dir=tmp_path))


def read(source: VCardSource, state: Any = None) -> tuple[list[Batch], list[Checkpoint]]:
    items = list(source.read(state))
    return (
        [i for i in items if isinstance(i, Batch)],
        [i for i in items if isinstance(i, Checkpoint)],
    )


class TestVCardConformance(SourceConformance):
    source_class = VCardSource
    plugin = crmkit_plugin_example

    def make_config(self, tmp_path: Path) -> dict[str, Any]:
        write(tmp_path, CARDS)
        return {"path": "people.vcf", "batch_size": 1}

    def add_records(self, config: dict[str, Any], tmp_path: Path) -> int:
        with open(tmp_path / "people.vcf", "a", encoding="utf-8") as f:
            f.write("BEGIN:VCARD\nVERSION:3.0\nFN:Alan Turing\nEND:VCARD\n")
        return 1

    def make_broken_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": "no-such-file.vcf"}


def test_fields_of_a_full_card(tmp_path: Path) -> None:
    write(tmp_path, CARDS)
    (batch,), _ = read(make_source(tmp_path))
    assert batch.kind == "contacts"
    assert batch.lines == [1, 15]
    col = batch.columns
    assert col["first_name"] == ["Ada", "Grace Brewster"]
    assert col["last_name"] == ["Lovelace", "Hopper"]
    assert col["email"] == ["ada@home.example", "grace@navy.example"], "PREF=1 comes first"
    assert col["other_emails"] == [["ada@work.example"], []]
    assert col["phone"] == ["+44 20 7946 0018", None]
    assert col["company"] == ["Analytical Engines Ltd", None]
    assert col["job_title"] == ["Mathematician", None]
    assert col["street"] == ["12 St James, Square", None]
    assert col["city"] == ["London", None]
    assert col["postcode"] == ["SW1Y 4JH", None]
    assert col["country"] == ["United Kingdom", None]
    assert col["birth_date"] == ["1815-12-10", None]
    assert col["tags"] == [["vip", "pioneer"], []]
    assert col["external_id"] == ["urn:uuid:ada-1", None]


def test_vcard_21_quoted_printable_and_bare_types() -> None:
    text = (
        "BEGIN:VCARD\r\nVERSION:2.1\r\nN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:M=C3=BCller;J=\r\n"
        "=C3=BCrgen\r\nTEL;CELL;PREF:+49 30 1234567\r\nTEL;WORK:+49 30 7654321\r\n"
        "item1.EMAIL;INTERNET:j@example.de\r\nEND:VCARD\r\n"
    )
    (card,) = list(parse_cards(text))
    row = card_to_row(card)  # type: ignore[arg-type]
    assert isinstance(row, dict)
    assert row["last_name"] == "Müller" and row["first_name"] == "Jürgen"
    assert row["phone"] == "+49 30 1234567" and row["other_phones"] == ["+49 30 7654321"]
    assert row["email"] == "j@example.de"


def test_tel_uri_and_folded_lines() -> None:
    text = "BEGIN:VCARD\nFN:Ann\n  Smith\nTEL;VALUE=uri:tel:+1-555-0100\nEND:VCARD\n"
    (card,) = list(parse_cards(text))
    row = card_to_row(card)  # type: ignore[arg-type]
    assert isinstance(row, dict)
    assert (row["first_name"], row["last_name"]) == ("Ann", "Smith")
    assert row["phone"] == "+1-555-0100"


def test_bad_cards_are_rejected_with_line_and_reason(tmp_path: Path) -> None:
    text = (
        "garbage before\n"
        "BEGIN:VCARD\nVERSION:3.0\nNOTE:only a note\nEND:VCARD\n"
        "BEGIN:VCARD\nFN:Bad\nthis line has no colon\nEND:VCARD\n"
        "BEGIN:VCARD\nFN:Unclosed\n"
        "BEGIN:VCARD\nFN:Good One\nEND:VCARD\n"
    )
    write(tmp_path, text)
    batches, _ = read(make_source(tmp_path))
    rows = sum(len(b) for b in batches)
    rejects = sorted((r.line, r.reason) for b in batches for r in b.rejects)
    assert rows == 1
    assert [line for line, _ in rejects] == [1, 2, 6, 10]
    reasons = dict(rejects)
    assert "outside" in reasons[1]
    assert "no name, email or phone" in reasons[2]
    assert "line 8" in reasons[6] and "':'" in reasons[6]
    assert "END:VCARD" in reasons[10]
    assert all(r.file and r.file.endswith("people.vcf") for b in batches for r in b.rejects)
    assert batches[-1].lines == [12]


def test_folder_of_files_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "cards").mkdir()
    write(tmp_path / "cards", "BEGIN:VCARD\nFN:Bea B\nEND:VCARD\n", "b.vcf")
    write(tmp_path / "cards", "BEGIN:VCARD\nFN:Al A\nEND:VCARD\n", "a.VCF")
    write(tmp_path / "cards", "not a card", "notes.txt")
    batches, checkpoints = read(make_source(tmp_path, path="cards"))
    assert [b.columns["first_name"] for b in batches] == [["Al"], ["Bea"]]
    assert set(checkpoints[-1].state["files"]) == {"a.VCF", "b.vcf"}


def test_incomplete_last_card_waits_for_the_next_run(tmp_path: Path) -> None:
    path = write(tmp_path, "BEGIN:VCARD\nFN:One A\nEND:VCARD\nBEGIN:VCARD\nFN:Two")
    batches, cps = read(make_source(tmp_path))
    assert [b.columns["first_name"] for b in batches] == [["One"]]
    with open(path, "a", encoding="utf-8") as f:
        f.write(" B\nEND:VCARD\n")
    batches, _ = read(make_source(tmp_path), cps[-1].state)
    assert [b.columns["last_name"] for b in batches] == [["B"]]
    assert batches[0].lines == [4]


def test_rewritten_file_is_read_again(tmp_path: Path) -> None:
    write(tmp_path, "BEGIN:VCARD\nFN:One A\nEND:VCARD\n")
    _, cps = read(make_source(tmp_path))
    write(tmp_path, "BEGIN:VCARD\nFN:Uno A\nEND:VCARD\n")
    batches, _ = read(make_source(tmp_path), cps[-1].state)
    assert [b.columns["first_name"] for b in batches] == [["Uno"]]


def test_batch_size(tmp_path: Path) -> None:
    write(tmp_path, "".join(f"BEGIN:VCARD\nFN:P{i} X\nEND:VCARD\n" for i in range(7)))
    batches, _ = read(make_source(tmp_path, batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert batches[1].lines == [10, 13, 16]


def test_wrong_encoding_is_a_source_error(tmp_path: Path) -> None:
    (tmp_path / "people.vcf").write_bytes(b"BEGIN:VCARD\nFN:Jos\xe9 A\nEND:VCARD\n")
    with pytest.raises(SourceError, match="not valid utf-8"):
        read(make_source(tmp_path))
    batches, _ = read(make_source(tmp_path, encoding="latin-1"))
    assert batches[0].columns["first_name"] == ["José"]


def test_discover_counts_cards(tmp_path: Path) -> None:
    write(tmp_path, CARDS)
    (info,) = make_source(tmp_path).discover()
    assert info.kind == "contacts" and info.rows == 2 and "email" in info.fields


def test_registered_through_the_plugin(
    crmkit_plugins: list[Any], crmkit_registry: Registry
) -> None:
    assert crmkit_registry.get("source", "vcard").owner == "crmkit_plugin_example"


@pytest.fixture
def crmkit_plugins() -> list[Any]:
    return [crmkit_plugin_example]
