"""Tests for crmkit.sample: the messy sample customer base and its ground truth."""

from __future__ import annotations

import csv
import importlib.util
import itertools
import json
import re
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from crmkit.sample import (
    COMPANY_HEADER,
    CONTACT_HEADER,
    DEFAULT_AS_OF,
    INTERACTION_KINDS,
    TRUTH_HEADER,
    SampleInfo,
    generate,
    generate_contacts_rows,
    iter_contacts,
)

ROOT = Path(__file__).resolve().parents[1]
FILES = ("contacts.csv", "truth.csv", "companies.csv", "interactions.jsonl")

# A few nickname pairs, written independently of the generator's table.
NICKNAMES = {
    "William": {"Bill", "Will", "Billy", "Liam"},
    "Robert": {"Bob", "Rob", "Bobby", "Robbie"},
    "Michael": {"Mike", "Mikey", "Mick"},
    "James": {"Jim", "Jimmy", "Jamie"},
    "John": {"Johnny", "Jack", "Jon"},
    "David": {"Dave", "Davey"},
    "Elizabeth": {"Liz", "Beth", "Betty", "Lizzie", "Eliza"},
    "Christopher": {"Chris"},
    "Thomas": {"Tom", "Tommy"},
    "Daniel": {"Dan", "Danny"},
    "Joseph": {"Joe", "Joey"},
    "Jennifer": {"Jen", "Jenny", "Jenn"},
    "Patricia": {"Pat", "Patty", "Trish", "Tricia"},
    "Richard": {"Rick", "Rich", "Dick", "Ricky"},
    "Margaret": {"Maggie", "Meg", "Peggy"},
    "Susan": {"Sue", "Susie"},
}


def _read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


class Sample:
    """A generated sample, read back and grouped by person."""

    def __init__(self, info: SampleInfo) -> None:
        self.info = info
        rows = _read_csv(info.contacts_path)
        self.header = rows[0]
        self.rows = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
        truth = _read_csv(info.truth_path)
        self.truth_header = truth[0]
        self.entity_of = {rid: eid for rid, eid in truth[1:]}
        self.by_entity: dict[str, list[dict[str, str]]] = defaultdict(list)
        for row in self.rows:
            self.by_entity[self.entity_of[row["Record ID"]]].append(row)

    def pairs(self) -> list[tuple[dict[str, str], dict[str, str]]]:
        """(first record, later record) for every duplicate row."""
        return [(recs[0], other) for recs in self.by_entity.values() for other in recs[1:]]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    out = tmp_path_factory.mktemp("sample")
    return Sample(generate(out, contacts=10_000, seed=7))


def test_contacts_csv_parses_with_the_crm_header(sample: Sample) -> None:
    assert tuple(sample.header) == CONTACT_HEADER
    assert len(sample.rows) == sample.info.contacts == 10_000
    ids = [row["Record ID"] for row in sample.rows]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"R\d{7}", rid) for rid in ids)
    assert {row["Newsletter"] for row in sample.rows} <= {"yes", "no", ""}
    assert {row["Plan"] for row in sample.rows} <= {
        "", "Free", "Starter", "Pro", "Business", "Enterprise"
    }  # fmt: skip
    for row in sample.rows:
        signed_up = date.fromisoformat(row["Signed Up"])
        assert signed_up <= DEFAULT_AS_OF.date()
        assert all(tag and tag == tag.strip() for tag in row["Tags"].split(";") if row["Tags"])
    # Many tags per row are ;-separated, and the CSV quotes fields with commas.
    assert any(";" in row["Tags"] for row in sample.rows)
    assert any("," in row["Street"] or "," in row["Company"] for row in sample.rows)


def test_truth_covers_every_row_and_entities_have_one_to_four_records(sample: Sample) -> None:
    assert tuple(sample.truth_header) == TRUTH_HEADER
    assert set(sample.entity_of) == {row["Record ID"] for row in sample.rows}
    sizes = Counter(len(recs) for recs in sample.by_entity.values())
    assert set(sizes) <= {1, 2, 3, 4}
    assert sizes[2] > sizes[3] > sizes[4] > 0
    assert sample.info.entities == len(sample.by_entity)
    assert sample.info.duplicate_rows == sample.info.contacts - sample.info.entities


def test_duplicates_are_scattered_through_the_file(sample: Sample) -> None:
    gaps = []
    for recs in sample.by_entity.values():
        nums = [int(r["Record ID"][1:]) for r in recs]
        assert nums == sorted(nums)
        gaps += [b - a for a, b in itertools.pairwise(nums)]
    assert sum(g == 1 for g in gaps) < 0.05 * len(gaps)
    assert sorted(gaps)[len(gaps) // 2] > 500


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.29, 0.5])
def test_duplicate_fraction_follows_the_setting(tmp_path: Path, rate: float) -> None:
    info = generate(tmp_path, contacts=4000, seed=3, duplicate_rate=rate, with_interactions=False)
    truth = _read_csv(info.truth_path)[1:]
    entities = {eid for _, eid in truth}
    fraction = (len(truth) - len(entities)) / len(truth)
    assert abs(fraction - rate) < 0.03
    assert info.duplicate_rows == len(truth) - len(entities)


def _strays(stray_rate: float) -> tuple[int, int, int]:
    """(duplicates, duplicates sharing no email, phone or postcode with the person's
    first row, duplicates with no email, phone, street or postcode at all)."""
    first: dict[str, list[str]] = {}
    at = {h: CONTACT_HEADER.index(h) for h in ("Email", "Phone", "Street", "Postcode")}

    def points(row: list[str]) -> tuple[str, str, str]:
        email = row[at["Email"]].strip().lower()
        digits = re.sub(r"\D", "", row[at["Phone"]])
        return email, digits[-7:], row[at["Postcode"]].replace(" ", "").lower()

    dups = strays = bare = 0
    for row, entity in iter_contacts(6000, seed=5, stray_rate=stray_rate):
        if entity not in first:
            first[entity] = row
            continue
        dups += 1
        a, b = points(first[entity]), points(row)
        if not any(x and x == y for x, y in zip(a, b, strict=True)):
            strays += 1
        if not any(row[j].strip() for j in at.values()):
            bare += 1
    return dups, strays, bare


def test_stray_rate_gives_duplicates_back_a_contact_point() -> None:
    dups, strays, bare = _strays(1.0)
    assert strays > 0.08 * dups
    assert bare > 0.02 * dups
    dups0, strays0, bare0 = _strays(0.0)
    assert abs(dups0 - dups) < 0.05 * dups
    assert strays0 < 0.6 * strays
    assert bare0 == 0
    _, strays_half, _ = _strays(0.5)
    assert strays0 < strays_half < strays


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", contacts=1500, seed=11)
    b = generate(tmp_path / "b", contacts=1500, seed=11)
    c = generate(tmp_path / "c", contacts=1500, seed=12)
    for name in FILES:
        assert (a.out_dir / name).read_bytes() == (b.out_dir / name).read_bytes(), name
        assert (a.out_dir / name).read_bytes() != (c.out_dir / name).read_bytes(), name
    counts = ("contacts", "entities", "duplicate_rows", "companies", "interactions")
    assert [getattr(a, k) for k in counts] == [getattr(b, k) for k in counts]


def test_contacts_do_not_depend_on_the_other_files(tmp_path: Path) -> None:
    full = generate(tmp_path / "full", contacts=800, seed=5)
    bare = generate(
        tmp_path / "bare", contacts=800, seed=5, with_interactions=False, with_companies=False
    )
    assert full.contacts_path.read_bytes() == bare.contacts_path.read_bytes()
    assert full.truth_path.read_bytes() == bare.truth_path.read_bytes()
    assert bare.companies_path is None and bare.interactions_path is None
    assert not (tmp_path / "bare" / "interactions.jsonl").exists()
    assert bare.interactions == 0 and bare.companies == 0


def test_streamed_rows_are_the_written_rows(tmp_path: Path) -> None:
    info = generate(tmp_path, contacts=1200, seed=9, with_interactions=False)
    written = _read_csv(info.contacts_path)[1:]
    assert [list(r) for r in generate_contacts_rows(1200, seed=9)] == written
    truth = _read_csv(info.truth_path)[1:]
    assert [[row[0], eid] for row, eid in iter_contacts(1200, seed=9)] == truth


def test_every_interaction_references_an_email_of_one_person(sample: Sample) -> None:
    owners: dict[str, set[str]] = defaultdict(set)
    for row in sample.rows:
        if row["Email"].strip():
            owners[row["Email"].strip()].add(sample.entity_of[row["Record ID"]])
    # An address written in the contacts belongs to one person only.
    assert all(len(people) == 1 for people in owners.values())
    assert sample.info.interactions_path is not None
    lines = sample.info.interactions_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == sample.info.interactions > 0
    start = DEFAULT_AS_OF - timedelta(days=366)
    ids = set()
    kinds: Counter[str] = Counter()
    for line in lines:
        event = json.loads(line)
        assert event["email"] in owners
        assert event["kind"] in INTERACTION_KINDS
        kinds[event["kind"]] += 1
        ids.add(event["id"])
        when = datetime.strptime(event["occurred_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert start <= when <= DEFAULT_AS_OF
        if event["kind"] == "purchase":
            assert event["amount"] > 0 and event["order_id"]
        if event["kind"] == "feedback":
            assert 0 <= event["score"] <= 10
        if event["kind"] == "ticket":
            assert event["ticket_id"]
    assert len(ids) == len(lines)
    assert set(kinds) == set(INTERACTION_KINDS)


def test_buyers_follow_a_pareto_and_some_people_never_buy(sample: Sample) -> None:
    assert sample.info.interactions_path is not None
    person = {}
    for row in sample.rows:
        if row["Email"].strip():
            person[row["Email"].strip()] = sample.entity_of[row["Record ID"]]
    purchases: Counter[str] = Counter()
    last_seen: dict[str, str] = {}
    with sample.info.interactions_path.open(encoding="utf-8") as f:
        for line in f:
            event = json.loads(line)
            who = person[event["email"]]
            last_seen[who] = max(last_seen.get(who, ""), event["occurred_at"])
            if event["kind"] == "purchase":
                purchases[who] += 1
    counts = sorted(purchases.values(), reverse=True)
    one_timers = sum(c == 1 for c in counts)
    assert one_timers > 0.2 * len(counts)
    top = counts[: max(1, len(counts) // 5)]
    assert sum(top) > 0.5 * sum(counts)
    assert len(purchases) < 0.8 * len(sample.by_entity)
    quiet_since = (DEFAULT_AS_OF - timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    churned = [who for who in purchases if last_seen[who] < quiet_since]
    assert len(churned) > 0.1 * len(purchases)


def test_companies_file(sample: Sample) -> None:
    assert sample.info.companies_path is not None
    rows = _read_csv(sample.info.companies_path)
    assert tuple(rows[0]) == COMPANY_HEADER
    companies = rows[1:]
    assert len(companies) == sample.info.companies > 0
    domains = [row[1] for row in companies]
    assert len(set(domains)) == len(domains)
    assert all(int(row[3]) > 0 for row in companies)
    names = {row[0] for row in companies}
    firsts = [recs[0]["Company"] for recs in sample.by_entity.values() if recs[0]["Company"]]
    assert sum(name in names for name in firsts) == len(firsts)
    # Work emails are at the companies' domains.
    domain_set = set(domains)
    work = [r for r in sample.rows if r["Email"].strip().rpartition("@")[2] in domain_set]
    assert len(work) > 0.1 * len(sample.rows)


def test_common_names_collide_across_different_people(sample: Sample) -> None:
    people: dict[tuple[str, str], set[str]] = defaultdict(set)
    for eid, recs in sample.by_entity.items():
        first = recs[0]
        people[(first["First Name"].strip().lower(), first["Last Name"].strip().lower())].add(eid)
    shared = {name: ids for name, ids in people.items() if len(ids) > 1}
    assert len(shared) >= 10
    smiths = {eid for (_, last), ids in people.items() if last == "smith" for eid in ids}
    assert len(smiths) > 50
    # And a long tail: most surnames are rare.
    surnames = Counter(last for (_, last), ids in people.items() for _ in ids)
    assert sum(1 for count in surnames.values() if count == 1) > 0.3 * len(surnames)


def _shape(phone: str) -> str:
    return re.sub(r"\d", "9", phone)


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def test_duplicates_carry_the_usual_variety_of_mistakes(sample: Sample) -> None:
    seen: Counter[str] = Counter()
    for a, b in sample.pairs():
        fa, fb = a["First Name"].strip(), b["First Name"].strip()
        la, lb = a["Last Name"].strip(), b["Last Name"].strip()
        if fb in NICKNAMES.get(fa, ()) or fa in NICKNAMES.get(fb, ()):
            seen["nickname"] += 1
        if fa and la and (fb, lb) == (la, fa):
            seen["swapped"] += 1
        if re.fullmatch(r"[A-Z]\.?", fb) and fa[:1] == fb[:1] and len(fa) > 2:
            seen["initial"] += 1
        if la and lb and la != lb and _edit_distance(la, lb) == 1:
            seen["typo"] += 1
        if la and lb and la.upper() == lb and la != lb:
            seen["all caps"] += 1
        if (a["First Name"] != fa) or (b["First Name"] != fb) or (b["Last Name"] != lb):
            seen["whitespace"] += 1
        ea, eb = a["Email"].strip(), b["Email"].strip()
        if ea and eb and ea != eb:
            if ea.lower() == eb.lower():
                seen["email case"] += 1
            elif "+" in eb and eb.split("+")[0] == ea.split("@")[0]:
                seen["email tag"] += 1
            elif ea.split("@")[0] == eb.split("@")[0]:
                seen["email domain"] += 1
            else:
                seen["email new"] += 1
        pa, pb = a["Phone"], b["Phone"]
        if pa and pb and pa != pb:
            da, db = re.sub(r"\D", "", pa)[-9:], re.sub(r"\D", "", pb)[-9:]
            seen["phone format" if da == db else "phone digits"] += 1
        if a["Postcode"] and b["Postcode"] and a["City"] != b["City"]:
            seen["moved or city variant"] += 1
        ba, bb = a["Birth Date"], b["Birth Date"]
        if ba and bb and re.fullmatch(r"\d{4}-\d\d-\d\d", bb) and ba != bb:
            ya, ma, da_ = ba.split("-")
            if bb == f"{ya}-{da_}-{ma}":
                seen["birth day/month swap"] += 1
        if any(not b[field] and a[field] for field in ("Email", "Phone", "Street")):
            seen["missing field"] += 1
    for kind in (
        "nickname", "swapped", "initial", "typo", "all caps", "whitespace", "email case",
        "email tag", "email domain", "email new", "phone format", "phone digits",
        "moved or city variant", "birth day/month swap", "missing field",
    ):  # fmt: skip
        assert seen[kind] > 0, kind
    shapes = Counter(_shape(row["Phone"]) for row in sample.rows if row["Phone"])
    for shape in ("(999) 999-9999", "+9 999 999 9999", "999.999.9999", "999-999-9999"):
        assert shape in shapes, shape
    countries = Counter(recs[0]["Country"] for recs in sample.by_entity.values())
    for country in ("United States", "United Kingdom", "Germany", "France", "Canada"):
        assert countries[country] > 0, country
    assert countries["United States"] > 0.5 * len(sample.by_entity)


def test_zero_contacts_write_headers_only(tmp_path: Path) -> None:
    info = generate(tmp_path, contacts=0)
    assert _read_csv(info.contacts_path) == [list(CONTACT_HEADER)]
    assert _read_csv(info.truth_path) == [list(TRUTH_HEADER)]
    assert info.interactions_path is not None
    assert info.interactions_path.read_bytes() == b""
    assert (info.contacts, info.entities, info.duplicate_rows, info.interactions) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"contacts": -1},
        {"duplicate_rate": 0.7},
        {"duplicate_rate": -0.1},
        {"years": 0},
        {"stray_rate": 1.5},
        {"stray_rate": -0.1},
    ],
)
def test_out_of_range_arguments_are_refused(tmp_path: Path, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path, **kwargs)  # type: ignore[arg-type]


def test_as_of_moves_the_timeline(tmp_path: Path) -> None:
    as_of = datetime(2021, 3, 1, tzinfo=UTC)
    info = generate(tmp_path, contacts=300, seed=1, as_of=as_of, years=0.5)
    assert info.interactions_path is not None
    for line in info.interactions_path.read_text(encoding="utf-8").splitlines():
        when = json.loads(line)["occurred_at"]
        assert "2020-08-30" <= when[:10] <= "2021-03-01"


def _load_cli() -> ModuleType:
    path = ROOT / "examples" / "quickstart" / "generate.py"
    spec = importlib.util.spec_from_file_location("quickstart_generate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_script(tmp_path: Path) -> None:
    cli = _load_cli()
    runner = CliRunner()
    out = tmp_path / "data"
    result = runner.invoke(cli.main, ["--out", str(out), "--contacts", "400", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert "400 contacts" in result.stdout
    for name in FILES:
        assert (out / name).is_file()
    expected = generate(tmp_path / "again", contacts=400, seed=5)
    assert (out / "contacts.csv").read_bytes() == expected.contacts_path.read_bytes()
    bad = runner.invoke(cli.main, ["--out", str(out), "--duplicate-rate", "0.9"])
    assert bad.exit_code == 2


def test_company_count_is_bounded() -> None:
    from crmkit.sample import MAX_COMPANIES, company_count

    assert company_count(0) == 8
    assert company_count(3000) == 150
    assert company_count(2_000_000) == MAX_COMPANIES == company_count(10_000_000)
