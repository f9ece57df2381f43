"""Labelled pairs: read from a file, used in training, over the store, files and workflows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmkit.cli import build_cli
from crmkit.dedupe import LabelledPair, dedupe_file, explain, read_labels
from crmkit.errors import ConfigError, SourceError
from crmkit.kernel import Kernel
from crmkit.plugins import make_plugin_manager
from crmkit.sample import SampleInfo, generate
from crmkit.settings import Settings


@pytest.fixture
def sample(tmp_path: Path) -> SampleInfo:
    return generate(tmp_path, contacts=800, with_interactions=False, with_companies=False)


@pytest.fixture
def kernel(tmp_path: Path, sample: SampleInfo) -> Iterator[Kernel]:
    k = Kernel.open(tmp_path / "crm.db", disable_plugin_autoload=True)
    k.import_file(sample.contacts_path, key="external_id")
    yield k
    k.close()


def _write(path: Path, rows: list[tuple[int, int, str]], header: str = "left,right,match") -> Path:
    path.write_text(header + "\n" + "".join(f"{a},{b},{m}\n" for a, b, m in rows))
    return path


def test_labels_are_read_with_their_line_and_any_common_spelling(tmp_path: Path) -> None:
    f = tmp_path / "pairs.csv"
    f.write_text(
        "\ufeffReviewer,A,B,Is_Match\n"
        "ann,1,2,yes\n"
        "\n"
        "bob, 3 ,4, No \n"
        "ann,5,6,TRUE\n"
        "ann,7,8,distinct\n"
        "ann,9,10,0\n"
    )
    got = read_labels(f)
    assert [(p.left, p.right, p.match) for p in got] == [
        (1, 2, True),
        (3, 4, False),
        (5, 6, True),
        (7, 8, False),
        (9, 10, False),
    ]
    assert [p.where for p in got] == [f"{f}:{n}" for n in (2, 4, 5, 6, 7)]


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("left,match\n1,yes\n", ":1:", "no 'right' column"),
        ("left,right,match\n1,2,yes\n1,x,no\n", ":3:", "right: not a whole number"),
        ("left,right,match\n1,2,perhaps\n", ":2:", "match: expected yes or no"),
        ("left,right,match\n4,4,yes\n", ":2:", "the same record"),
        ("left,right,match\n1,2\n", ":2:", "expected 3 fields, found 2"),
    ],
)
def test_a_bad_labels_file_is_named_with_line_and_column(
    tmp_path: Path, text: str, where: str, what: str
) -> None:
    f = tmp_path / "pairs.csv"
    f.write_text(text)
    with pytest.raises(SourceError) as e:
        read_labels(f)
    assert str(e.value).startswith(f"{f}{where}") and what in str(e.value), str(e.value)


def test_missing_or_binary_labels_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        read_labels(tmp_path / "nope.csv")
    bad = tmp_path / "bin.csv"
    bad.write_bytes(b"left,right,match\n\xff\xfe,1,yes\n")
    with pytest.raises(SourceError, match="not UTF-8"):
        read_labels(bad)


def test_labels_move_the_model_towards_what_they_say(kernel: Kernel) -> None:
    base = kernel.dedupe()
    assert "labelled_pairs" not in base.stats
    sure = sorted(base.pairs, key=lambda p: -p.probability)[:40]
    said_no = [LabelledPair(p.left, p.right, False) for p in sure]
    doubted = kernel.dedupe(labels=said_no)
    assert doubted.stats["labelled_pairs"] == 40
    assert doubted.matcher.model() != base.matcher.model()

    def weight(res: object, pairs: list[LabelledPair]) -> float:
        return sum(explain(res, p.left, p.right)["total_weight"] for p in pairs)  # type: ignore[arg-type]

    # Pairs a reviewer rejected weigh less once the model has heard it.
    assert weight(doubted, said_no) < weight(base, said_no)
    said_yes = [LabelledPair(p.left, p.right, True) for p in sure]
    assert weight(kernel.dedupe(labels=said_yes), said_yes) > weight(doubted, said_no)


def test_labels_follow_merges_and_unknown_contacts_are_warned_of(
    kernel: Kernel, tmp_path: Path
) -> None:
    from crmkit.store.base import MergeSpec

    res = kernel.dedupe()
    p, q = next(v for v in res.clusters.values() if len(v) == 2)
    clustered = {i for v in res.clusters.values() for i in v}
    x = next(i for i in res.ids if i not in clustered)
    # "x is not q"; then x is merged into p: p now carries x's verdict.
    kernel.label_pairs([LabelledPair(x, q, False)])
    before = kernel.dedupe()
    assert before.assignment[before.ids.index(p)] == before.assignment[before.ids.index(q)]
    kernel.store.apply_merges([MergeSpec(survivor_id=p, merged_ids=(x,))], actor="test")
    after = kernel.dedupe()
    where = dict(zip(after.ids, after.assignment, strict=True))
    assert where[p] != where[q] and after.stats["links_kept_apart"] >= 1
    # A pair now inside one contact is dropped quietly; an unknown id is warned of.
    f = _write(tmp_path / "pairs.csv", [(p, x, "yes"), (p, 999_999, "no")])
    again = kernel.dedupe(labels=f)
    assert again.stats["labelled_pairs"] == 1  # the stored x/q pair, as p/q
    assert [w for w in again.warnings if "labelled pair" in w] == [
        "1 labelled pair(s) name a contact that does not exist (erased?): not used"
    ]


def test_file_labels_are_row_numbers(tmp_path: Path, sample: SampleInfo) -> None:
    out = tmp_path / "out.csv"
    rep = dedupe_file(
        sample.contacts_path,
        out,
        labels=[LabelledPair(1, 2, False), LabelledPair(3, 800, True)],
    )
    assert rep.stats["labelled_pairs"] == 2
    past = _write(tmp_path / "pairs.csv", [(1, 2, "no"), (5, 801, "yes")])
    with pytest.raises(ConfigError) as e:
        dedupe_file(sample.contacts_path, out, labels=read_labels(past))
    assert str(e.value).startswith(f"{past}:3: row 801 is not among the 800 rows read")


def test_cli_and_workflow_take_a_labels_file(tmp_path: Path, sample: SampleInfo) -> None:
    cli = build_cli(make_plugin_manager(Settings(disable_plugin_autoload=True)))
    db = str(tmp_path / "crm.db")
    r = CliRunner()
    assert r.invoke(cli, ["--db", db, "import", str(sample.contacts_path), "--key", "external_id"])
    pairs = _write(tmp_path / "pairs.csv", [(1, 2, "no"), (3, 4, "no")])
    res = r.invoke(cli, ["--db", db, "dedupe", "--json", "--labels", str(pairs)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["summary"]["stats"]["labelled_pairs"] == 2
    out = str(tmp_path / "o.csv")
    argv = ["dedupe", str(sample.contacts_path), "--out", out, "--json", "--labels", str(pairs)]
    res = r.invoke(cli, argv)
    assert res.exit_code == 0 and json.loads(res.stdout)["stats"]["labelled_pairs"] == 2

    wf = tmp_path / "workflow.toml"
    wf.write_text(
        f'[[sources]]\nuse = "csv"\npath = "{sample.contacts_path.name}"\nkey = "external_id"\n\n'
        '[dedupe]\nlabels = "pairs.csv"\n'
    )
    k = Kernel.open(tmp_path / "wf.db", disable_plugin_autoload=True)
    try:
        step = next(s for s in k.run_workflow(wf)["steps"] if s["step"] == "dedupe")
        assert step["labelled_pairs"] == 2 and step["merged"] > 0
        pairs.write_text("left,right,match\n1,2,maybe\n")
        with pytest.raises(ConfigError) as e:
            k.run_workflow(wf)
        assert "dedupe.labels: " in str(e.value) and "pairs.csv:2: match" in str(e.value)
    finally:
        k.close()


def test_a_pair_labelled_distinct_never_shares_a_cluster(kernel: Kernel) -> None:
    base = kernel.dedupe()
    cid, ids = next((c, v) for c, v in base.clusters.items() if len(v) >= 2)
    a, b = ids[0], ids[-1]
    res = kernel.dedupe(labels=[LabelledPair(a, b, False)])
    where = dict(zip(res.ids, res.assignment, strict=True))
    assert where[a] != where[b]
    assert res.stats["links_kept_apart"] >= 1
    # Every other cluster is as it was.
    others = {c: v for c, v in base.clusters.items() if c != cid}
    assert {c: v for c, v in res.clusters.items() if a not in v and b not in v} == others


def test_an_undone_merge_is_not_proposed_again(kernel: Kernel) -> None:
    from crmkit.dedupe import DedupeConfig, find_duplicates

    res = kernel.dedupe()
    events = kernel.merge(kernel.plan_merges(res))
    undone = events[0]
    kernel.undo_merge(undone.id)
    group = {undone.survivor_id, *undone.merged_ids}
    again = kernel.dedupe()
    together = [v for v in again.clusters.values() if len(group & set(v)) > 1]
    assert together == [] and again.stats["links_kept_apart"] >= 1
    allowed = find_duplicates(kernel.store, DedupeConfig(keep_undone_apart=False))
    assert any(group <= set(v) for v in allowed.clusters.values())


def test_file_rows_labelled_distinct_get_different_cluster_ids(
    tmp_path: Path, sample: SampleInfo
) -> None:
    import csv

    out = tmp_path / "out.csv"
    dedupe_file(sample.contacts_path, out)

    def cluster_ids() -> list[str]:
        with out.open(newline="", encoding="utf-8") as f:
            return [r[-1] for r in list(csv.reader(f))[1:]]

    before = cluster_ids()
    first = next(i for i, c in enumerate(before) if before.count(c) > 1)
    second = next(i for i, c in enumerate(before) if c == before[first] and i != first)
    rep = dedupe_file(
        sample.contacts_path, out, labels=[LabelledPair(first + 1, second + 1, False)]
    )
    after = cluster_ids()
    assert after[first] != after[second] and rep.stats["links_kept_apart"] >= 1


def test_pairs_reviewed_in_the_store_hold_for_every_later_run(
    kernel: Kernel, tmp_path: Path
) -> None:
    base = kernel.dedupe()
    a, b = next(v for v in base.clusters.values() if len(v) >= 2)[:2]
    assert kernel.label_pairs([LabelledPair(b, a, False)]) == 1
    for res in (kernel.dedupe(), kernel.dedupe(labels=[LabelledPair(1, 2, True)])):
        where = dict(zip(res.ids, res.assignment, strict=True))
        assert where[a] != where[b] and res.stats["labelled_pairs"] >= 1
    # The index of new records trains on them too (no error, same contacts).
    assert len(kernel.match_index()) == len(base.ids)
    # Changing one's mind: the latest verdict counts.
    f = _write(tmp_path / "again.csv", [(a, b, "yes")])
    kernel.label_pairs(f)
    res = kernel.dedupe()
    where = dict(zip(res.ids, res.assignment, strict=True))
    assert where[a] == where[b] and res.stats.get("links_kept_apart", 0) == 0


def test_cli_records_same_and_distinct(tmp_path: Path, sample: SampleInfo) -> None:
    cli = build_cli(make_plugin_manager(Settings(disable_plugin_autoload=True)))
    db = str(tmp_path / "crm.db")
    r = CliRunner()
    assert r.invoke(cli, ["--db", db, "import", str(sample.contacts_path), "--key", "external_id"])
    shown = json.loads(r.invoke(cli, ["--db", db, "dedupe", "--json", "--show", "1"]).stdout)
    a, b = shown["clusters"][0]["ids"][:2]
    res = r.invoke(cli, ["--db", db, "dedupe", "--distinct", str(a), str(b)])
    assert res.exit_code == 0 and f"{a} and {b} are different people" in res.stdout
    after = json.loads(r.invoke(cli, ["--db", db, "dedupe", "--json", "--show", "1000"]).stdout)
    assert not any({a, b} <= set(c["ids"]) for c in after["clusters"])
    text = r.invoke(cli, ["--db", db, "dedupe"]).stdout
    assert "reviewed pairs used: 1; matches kept apart (reviewed as different people" in text
    res = r.invoke(cli, ["--db", db, "dedupe", "--json", "--same", str(a), "999999"])
    assert res.exit_code == 1 and "no contact with id 999999" in str(res.exception)
    res = r.invoke(cli, ["dedupe", str(sample.contacts_path), "--out", "o.csv", "--same", "1", "2"])
    assert res.exit_code == 1 and "work on the store" in str(res.exception)
