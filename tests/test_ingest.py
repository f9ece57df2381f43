"""Ingest through the kernel: mapping, normalization, rejects, incremental re-runs."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmkit.errors import ConfigError
from crmkit.kernel import Kernel
from crmkit.settings import Settings

HEADER = [
    "Record ID",
    "First Name",
    "Last Name",
    "Email",
    "Phone",
    "City",
    "Country",
    "Plan",
    "Newsletter",
    "Tags",
]


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def rows(n: int, start: int = 0) -> list[list[str]]:
    return [
        [
            f"R{i}",
            f"ann{i}",
            "LEE",
            f" Ann.Lee{i}@Example.COM ",
            "(650) 253-0000",
            "Springfield",
            "USA",
            "pro" if i % 2 else "free",
            "yes" if i % 3 else "no",
            "vip;new",
        ]
        for i in range(start, start + n)
    ]


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel(Settings(db=tmp_path / "crm.db", disable_plugin_autoload=True))
    yield k
    k.close()


def snapshot(k: Kernel) -> list[tuple[object, ...]]:
    """Store contents without timestamps, to compare runs."""
    out: list[tuple[object, ...]] = []
    for table in ("contacts", "identities", "interactions", "attributes"):
        for row in k.store.iter_table(table):
            if table == "contacts":
                row = tuple(
                    v for i, v in enumerate(row) if i not in (19, 20)
                )  # created_at, updated_at
            elif table == "attributes":
                row = row[:3]
            out.append((table, *row))
    return out


def test_import_normalizes_maps_and_types(kernel: Kernel, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "c.csv", rows(4))
    rep = kernel.import_file(f)
    assert (rep.kind, rep.rows, rep.created, rep.rejected_rows) == ("contacts", 4, 4, 0)
    assert (
        rep.attribute_types["plan"] == "string" and rep.attribute_types["newsletter"] == "boolean"
    )
    c = kernel.find_contacts(email="ann.lee1@example.com")[0]
    assert c.email == "ann.lee1@example.com"
    assert c.phone == "+16502530000"
    assert c.country == "US"
    assert c.tags == ("vip", "new")
    assert c.attributes == {"plan": "pro", "newsletter": True}
    assert c.external_ids == {"file:c.csv": "R1"}


def test_text_attributes_are_trimmed_and_blanks_dropped_from_csv_and_jsonl(
    kernel: Kernel, tmp_path: Path
) -> None:
    # The CSV reader trims cells itself (its batches say so); JSON Lines
    # values are cleaned by the host. Both store the same attributes.
    got = {}
    for fmt in ("csv", "jsonl"):
        plans = ["  gold\u00a0", " \t ", "", "pro"]
        if fmt == "csv":
            f = write_csv(
                tmp_path / "t.csv",
                [[f"email{i}@{fmt}.test", p] for i, p in enumerate(plans)],
                header=["Email", "Plan"],
            )
        else:
            f = tmp_path / "t.jsonl"
            f.write_text(
                "".join(
                    json.dumps({"email": f"email{i}@{fmt}.test", "plan": p}) + "\n"
                    for i, p in enumerate(plans)
                ),
                encoding="utf-8",
            )
        kernel.import_file(f, kind="contacts")
        got[fmt] = [
            kernel.find_contacts(email=f"email{i}@{fmt}.test")[0].attributes.get("plan")
            for i in range(len(plans))
        ]
    assert got["csv"] == got["jsonl"] == ["gold", None, None, "pro"]


def test_rejects_name_line_and_field_and_keep_the_rest(kernel: Kernel, tmp_path: Path) -> None:
    data = rows(3)
    data[1][3] = "not-an-email"  # line 3: bad key -> row skipped
    data[2][4] = "12"  # line 4: bad phone -> value dropped, row kept
    f = write_csv(tmp_path / "c.csv", data)
    rep = kernel.import_file(f, rejects=tmp_path / "rej.csv")
    assert rep.created == 2 and rep.rejected_rows == 1 and rep.dropped_values == 1
    rej = list(csv.DictReader((tmp_path / "rej.csv").open()))
    assert {(r["line"], r["field"], r["action"]) for r in rej} == {
        ("3", "email", "row skipped"),
        ("4", "phone", "value dropped"),
    }
    text = (tmp_path / "rej.csv").read_text()
    assert "not-an-email" not in text, "rejects carry no values"


def test_rerun_imports_only_what_is_new(kernel: Kernel, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "c.csv", rows(5))
    kernel.import_file(f)
    again = kernel.import_file(f)
    assert again.rows == 0 and again.resumed
    with f.open("a", newline="") as fh:
        csv.writer(fh).writerows(rows(2, start=5))
    more = kernel.import_file(f)
    assert (more.rows, more.created) == (2, 2)
    assert kernel.store.count_contacts() == 7


@pytest.mark.parametrize("group_rows", [10, 20, 250_000])
def test_interrupted_import_rerun_equals_clean_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group_rows: int
) -> None:
    from crmkit.ingest import Ingester

    monkeypatch.setattr(Ingester, "GROUP_ROWS", group_rows)
    f = write_csv(tmp_path / "c.csv", rows(50))

    def run(db: Path, fail_after: int | None) -> Kernel:
        k = Kernel(Settings(db=db, disable_plugin_autoload=True))
        src = k.plugin("source", "csv", {"path": str(f), "batch_rows": 10})
        if fail_after is not None:
            calls = {"n": 0}

            def boom(n: int) -> None:
                calls["n"] += 1
                if calls["n"] == fail_after:
                    raise KeyboardInterrupt

            with pytest.raises(KeyboardInterrupt):
                k.ingest(src, name="c", on_batch=boom)
        k.ingest(src, name="c")
        return k

    clean = run(tmp_path / "clean.db", None)
    broken = run(tmp_path / "broken.db", 3)
    assert broken.store.count_contacts() == 50
    assert snapshot(clean) == snapshot(broken)


def test_dry_run_writes_nothing(kernel: Kernel, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "c.csv", rows(3))
    rep = kernel.import_file(f, dry_run=True)
    assert rep.created == 3 and rep.dry_run
    assert kernel.store.count_contacts() == 0
    assert kernel.store.get_state("file:c.csv") is None


def test_missing_key_column_is_a_clear_error(kernel: Kernel, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "c.csv", [["Ann", "Lee"]], header=["First Name", "Last Name"])
    with pytest.raises(ConfigError, match="upsert key 'email'"):
        kernel.import_file(f)


def test_interactions_jsonl_link_to_contacts(kernel: Kernel, tmp_path: Path) -> None:
    kernel.import_file(write_csv(tmp_path / "c.csv", rows(2)))
    lines = [
        {
            "id": "I1",
            "email": "ANN.LEE0@example.com",
            "kind": "purchase",
            "occurred_at": "2026-01-05T10:00:00Z",
            "amount": 20.5,
            "sku": "X",
        },
        {
            "id": "I2",
            "email": "nobody@example.com",
            "kind": "purchase",
            "occurred_at": "2026-01-05T10:00:00Z",
        },
        {"id": "I3", "email": "ann.lee1@example.com", "kind": "call", "occurred_at": "yesterday"},
    ]
    p = tmp_path / "i.jsonl"
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken\n")
    rep = kernel.import_file(p, rejects=tmp_path / "rej.csv")
    assert rep.kind == "interactions" and rep.interactions_added == 1 and rep.rejected_rows == 3
    reasons = {r["line"]: r["reason"] for r in csv.DictReader((tmp_path / "rej.csv").open())}
    assert set(reasons) == {"2", "3", "4"}
    c = kernel.find_contacts(email="ann.lee0@example.com")[0]
    tl = kernel.timeline(c.id)
    assert [(i.kind, i.amount, i.properties) for i in tl] == [("purchase", 20.5, {"sku": "X"})]
    assert kernel.import_file(p).interactions_added == 0


def test_interactions_jsonl_columns_edge_cases(kernel: Kernel, tmp_path: Path) -> None:
    kernel.import_file(write_csv(tmp_path / "c.csv", rows(2)))
    lines = [
        # Two keys map to the email field: the later one in the object wins.
        {
            "Email": "nobody@example.com",
            "email": "ann.lee0@example.com",
            "kind": "Call",
            "occurred_at": "2026-01-05T12:00:00+02:00",
            "amount": "",
            "note": None,
        },
        {
            "kind": "call",
            "email": "ann.lee1@example.com",
            "occurred_at": "2026-01-05",
            "amount": 3,
            "note": {"deep": [1, 2]},
        },
        {
            "kind": "call",
            "email": "ann.lee1@example.com",
            "occurred_at": 1767614400,
            "amount": "12,5",
        },
    ]
    p = tmp_path / "i.jsonl"
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    rep = kernel.import_file(p, rejects=tmp_path / "rej.csv")
    assert rep.interactions_added == 2 and rep.rejected_rows == 1
    reasons = [(r["line"], r["field"]) for r in csv.DictReader((tmp_path / "rej.csv").open())]
    assert reasons == [("3", "amount")]
    ann0 = kernel.find_contacts(email="ann.lee0@example.com")[0]
    [first] = kernel.timeline(ann0.id)
    assert first.kind == "call" and first.amount is None and first.properties == {}
    assert first.occurred_at.isoformat() == "2026-01-05T10:00:00+00:00"
    ann1 = kernel.find_contacts(email="ann.lee1@example.com")[0]
    [second] = kernel.timeline(ann1.id)
    assert second.amount == 3.0 and second.properties == {"note": {"deep": [1, 2]}}
    assert second.occurred_at.isoformat() == "2026-01-05T00:00:00+00:00"


def test_hubspot_preset(kernel: Kernel, tmp_path: Path) -> None:
    header = [
        "Record ID",
        "First Name",
        "Last Name",
        "Email",
        "Phone Number",
        "Company Name",
        "State/Region",
        "Postal Code",
        "Country/Region",
        "Lifecycle Stage",
    ]
    f = write_csv(
        tmp_path / "hs.csv",
        [
            [
                "101",
                "Bo",
                "Li",
                "bo@li.com",
                "+44 20 7946 0958",
                "Acme",
                "London",
                "sw1a 1aa",
                "United Kingdom",
                "customer",
            ]
        ],
        header,
    )
    kernel.import_file(f, preset="hubspot", key="external_id")
    c = kernel.find_contacts(email="bo@li.com")[0]
    assert (c.company, c.region, c.country, c.lifecycle_stage) == (
        "Acme",
        "London",
        "GB",
        "customer",
    )
    assert c.phone == "+442079460958"


def test_consent_column_is_recorded_with_file_and_line(kernel: Kernel, tmp_path: Path) -> None:
    from crmkit.ingest import ConsentColumn

    f = write_csv(tmp_path / "c.csv", rows(4))  # Newsletter: no, yes, yes, no
    rep = kernel.import_file(f, consent=[ConsentColumn(column="newsletter")])
    assert (rep.consents_given, rep.consents_withdrawn) == (2, 2)
    ids = [kernel.find_contacts(email=f"ann.lee{i}@example.com")[0].id for i in range(4)]
    status = kernel.store.consent_status(ids, channel="email", purpose="marketing")
    assert [status[i] for i in ids] == ["withdrawn", "given", "given", "withdrawn"]
    evidence = kernel.store.conn.execute(  # type: ignore[attr-defined]
        "SELECT evidence FROM consents WHERE contact_id = ?", (ids[1],)
    ).fetchone()[0]
    assert evidence.endswith("c.csv:3")


def test_interaction_rejects_name_the_first_check_each_row_fails(
    kernel: Kernel, tmp_path: Path
) -> None:
    kernel.import_file(write_csv(tmp_path / "c.csv", rows(2)))
    ok = {"email": "ann.lee0@example.com", "kind": "call", "occurred_at": "2026-01-05T10:00:00Z"}
    lines = [
        {**ok, "id": "A"},
        {**ok, "email": "not-an-email"},
        {**ok, "email": "nobody@example.com"},
        {"kind": "call", "occurred_at": "2026-01-05T10:00:00Z"},
        {**ok, "kind": ""},
        {**ok, "kind": "", "occurred_at": "garbage"},  # the kind is checked first
        {**ok, "occurred_at": "garbage"},
        {**ok, "occurred_at": None},
        {**ok, "amount": "lots"},
        # No id: keyed by a hash of what the row says, the same on every run.
        {**ok, "kind": "Purchase", "amount": 5, "subject": "s", "sku": "X", "n": 2},
        {**ok, "id": "B", "email": "ann.lee1@example.com"},
    ]
    p = tmp_path / "i.jsonl"
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    rep = kernel.import_file(p, rejects=tmp_path / "rej.csv")
    got = [
        (r["line"], r["field"], r["reason"]) for r in csv.DictReader((tmp_path / "rej.csv").open())
    ]
    assert got == [
        ("2", "contact_email", "not an email address"),
        ("3", "contact_email", "no contact with this email or id"),
        ("4", "contact_email", "no contact reference (email or contact id)"),
        ("5", "kind", "missing kind"),
        ("6", "kind", "missing kind"),
        ("7", "occurred_at", "not a date-time (ISO 8601)"),
        ("8", "occurred_at", "missing occurred_at"),
        ("9", "amount", "not a number"),
    ]
    assert rep.interactions_added == 3 and rep.rejected_rows == 8
    ann0 = kernel.find_contacts(email="ann.lee0@example.com")[0]
    source = rep.source
    basis = f"{ann0.id}|Purchase|1767607200|5.0|s|{sorted({'sku': 'X', 'n': 2}.items())}"
    want = {
        f"{source}:A",
        f"{source}:B",
        f"{source}:h:" + hashlib.sha1(basis.encode()).hexdigest(),
    }
    keys = {r[0] for r in kernel.store.conn.execute("SELECT key FROM interactions")}
    assert keys == want
    assert kernel.import_file(p, full=True).interactions_added == 0
