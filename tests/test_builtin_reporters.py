"""The built-in reporters: terminal, json, csv and jsonl."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from crmkit.builtin.reporters import (
    CsvReporter,
    JsonlReporter,
    JsonReporter,
    TerminalReporter,
    cell_text,
    escape_formula,
    slugify,
)
from crmkit.errors import ConfigError
from crmkit.kinds import PluginContext, Report, Reporter, Table
from crmkit.plugins import Registry
from crmkit.testing import build_plugin_manager

DANGEROUS = ["=1+1", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def _report() -> Report:
    return Report(
        title="Run summary",
        generated_at="2025-01-02T03:04:05+00:00",
        tables=[
            Table(
                title="Segment sizes",
                columns=["segment", "contacts", "share"],
                rows=[["vip", 12, 0.25], ["at risk", 3, None], ["=HYPERLINK(1)", -4, 1.5]],
                note="as of the last run",
            ),
            Table(
                title="Deliveries",
                columns=["channel", "when", "tags"],
                rows=[["file", datetime(2025, 1, 2, tzinfo=UTC), ["a", "b"]]],
            ),
        ],
    )


def _make(cls: type[Reporter], tmp_path: Path, **config: Any) -> Any:
    return cls(cls.Config.model_validate(config), PluginContext(base_dir=tmp_path))


def _render(cls: type[Reporter], tmp_path: Path, report: Report | None = None, **cfg: Any) -> str:
    buf = io.StringIO()
    _make(cls, tmp_path, **cfg).render(report or _report(), buf)
    return buf.getvalue()


def test_builtin_reporters_registered() -> None:
    registry = Registry(build_plugin_manager(), strict=True)
    for name in ("terminal", "json", "csv", "jsonl"):
        assert registry.get("reporter", name).owner == "builtin.reporters"


@pytest.mark.parametrize("cls", [TerminalReporter, JsonReporter, CsvReporter, JsonlReporter])
def test_config_forbids_unknown_keys(cls: type[Reporter]) -> None:
    with pytest.raises(ValidationError):
        cls.Config.model_validate({"pathh": "x"})


# -- helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", DANGEROUS)
def test_escape_formula_prefixes_dangerous_starts(value: str) -> None:
    assert escape_formula(value) == "'" + value


@pytest.mark.parametrize("value", ["", "vip", "a=b", "1-2", " =x", "'quoted"])
def test_escape_formula_leaves_safe_text(value: str) -> None:
    assert escape_formula(value) == value


def test_cell_text() -> None:
    assert cell_text(None) == ""
    assert cell_text(True) == "true"
    assert cell_text(date(2025, 1, 2)) == "2025-01-02"
    assert cell_text(["a", 1]) == "a, 1"
    assert cell_text(0.5) == "0.5"


def test_slugify() -> None:
    assert slugify("Segment sizes (by run)") == "segment-sizes-by-run"
    assert slugify("!!!") == "table"


# -- terminal -----------------------------------------------------------------------------


def test_terminal_plain_when_not_a_tty(tmp_path: Path) -> None:
    text = _render(TerminalReporter, tmp_path)
    assert "\x1b[" not in text, "no escape codes when not a terminal"
    for word in ("Run summary", "Segment sizes", "vip", "at risk", "Deliveries", "a, b"):
        assert word in text
    assert "as of the last run" in text
    assert all(line == line.rstrip() for line in text.splitlines())


def test_terminal_right_aligns_numbers(tmp_path: Path) -> None:
    text = _render(TerminalReporter, tmp_path)
    line = next(ln for ln in text.splitlines() if "vip" in ln)
    other = next(ln for ln in text.splitlines() if "at risk" in ln)
    assert line.index("12") + 1 == other.index("3"), "numbers end in the same column"


def test_terminal_respects_width(tmp_path: Path) -> None:
    long = Report(title="t", tables=[Table(title="x", columns=["c"], rows=[["word " * 60]])])
    text = _render(TerminalReporter, tmp_path, long, width=40)
    assert max(len(line) for line in text.splitlines()) <= 40
    assert text.count("word") == 60, "long cells wrap, nothing is cut"


def test_terminal_color_forced(tmp_path: Path) -> None:
    assert "\x1b[" in _render(TerminalReporter, tmp_path, color=True)


def test_terminal_max_rows(tmp_path: Path) -> None:
    text = _render(TerminalReporter, tmp_path, max_rows=1)
    assert "vip" in text and "at risk" not in text
    assert "2 more rows" in text


def test_terminal_empty_table(tmp_path: Path) -> None:
    report = Report(title="t", tables=[Table(title="nothing", columns=["a"], rows=[])])
    assert "(no rows)" in _render(TerminalReporter, tmp_path, report)


def test_terminal_writes_path(tmp_path: Path) -> None:
    _make(TerminalReporter, tmp_path, path="out/report.txt").render(_report(), None)
    assert "Segment sizes" in (tmp_path / "out" / "report.txt").read_text()


def test_terminal_stdout_by_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _make(TerminalReporter, tmp_path).render(_report(), None)
    assert "Segment sizes" in capsys.readouterr().out


def test_terminal_import_is_lazy() -> None:
    import subprocess
    import sys

    code = "import crmkit.builtin.reporters, sys; print('rich' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- json ---------------------------------------------------------------------------------


def test_json_round_trips(tmp_path: Path) -> None:
    data = json.loads(_render(JsonReporter, tmp_path))
    assert data["title"] == "Run summary"
    assert data["generated_at"] == "2025-01-02T03:04:05+00:00"
    seg = data["tables"][0]
    assert seg["columns"] == ["segment", "contacts", "share"]
    assert seg["rows"][0] == ["vip", 12, 0.25]
    assert seg["rows"][2][0] == "=HYPERLINK(1)", "json keeps values as they are"
    assert data["tables"][1]["rows"][0][1] == "2025-01-02T00:00:00Z"


def test_json_one_line_with_indent_zero(tmp_path: Path) -> None:
    assert _render(JsonReporter, tmp_path, indent=0).count("\n") == 1


def test_json_writes_path(tmp_path: Path) -> None:
    _make(JsonReporter, tmp_path, path="r.json").render(_report(), None)
    assert json.loads((tmp_path / "r.json").read_text())["tables"][1]["title"] == "Deliveries"


# -- csv ----------------------------------------------------------------------------------


def test_csv_one_file_per_table(tmp_path: Path) -> None:
    _make(CsvReporter, tmp_path, path="out").render(_report(), None)
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["deliveries.csv", "segment-sizes.csv"]
    with open(tmp_path / "out" / "segment-sizes.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["segment", "contacts", "share"]
    assert rows[1] == ["vip", "12", "0.25"]
    assert rows[2] == ["at risk", "3", ""]
    assert rows[3] == ["'=HYPERLINK(1)", "-4", "1.5"], "text escaped, numbers kept"


def test_csv_same_titles_get_distinct_files(tmp_path: Path) -> None:
    t = Table(title="Same", columns=["a"], rows=[[1]])
    _make(CsvReporter, tmp_path, path="out").render(Report(title="r", tables=[t, t]), None)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["same-2.csv", "same.csv"]


@pytest.mark.parametrize("value", DANGEROUS)
def test_csv_escapes_every_dangerous_start(tmp_path: Path, value: str) -> None:
    report = Report(title="r", tables=[Table(title="t", columns=[value], rows=[[value]])])
    rows = list(csv.reader(io.StringIO(_render(CsvReporter, tmp_path, report), newline="")))
    assert rows == [["'" + value], ["'" + value]]


def test_csv_escaping_can_be_turned_off(tmp_path: Path) -> None:
    text = _render(CsvReporter, tmp_path, escape_formulas=False, table="segment-sizes")
    assert "\r\n=HYPERLINK(1)," in text


def test_csv_stream_blocks_and_table_choice(tmp_path: Path) -> None:
    text = _render(CsvReporter, tmp_path)
    blocks = text.split("\r\n\r\n")
    assert len(blocks) == 2
    assert blocks[1].startswith("channel,when,tags")
    only = _render(CsvReporter, tmp_path, table="Deliveries")
    assert list(csv.reader(io.StringIO(only)))[1] == ["file", "2025-01-02T00:00:00+00:00", "a, b"]


def test_csv_unknown_table_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no table 'nope'"):
        _render(CsvReporter, tmp_path, table="nope")


# -- jsonl --------------------------------------------------------------------------------


def test_jsonl_one_object_per_row(tmp_path: Path) -> None:
    lines = [json.loads(x) for x in _render(JsonlReporter, tmp_path).splitlines()]
    assert len(lines) == 4
    assert lines[0] == {"table": "Segment sizes", "segment": "vip", "contacts": 12, "share": 0.25}
    assert lines[2]["segment"] == "=HYPERLINK(1)"
    assert lines[3]["table"] == "Deliveries" and lines[3]["tags"] == ["a", "b"]


def test_jsonl_escaping_on_request(tmp_path: Path) -> None:
    lines = [
        json.loads(x) for x in _render(JsonlReporter, tmp_path, escape_formulas=True).splitlines()
    ]
    assert lines[2]["segment"] == "'=HYPERLINK(1)"
    assert lines[2]["contacts"] == -4


def test_jsonl_writes_path(tmp_path: Path) -> None:
    _make(JsonlReporter, tmp_path, path="x/rows.jsonl").render(_report(), None)
    assert len((tmp_path / "x" / "rows.jsonl").read_text().splitlines()) == 4
