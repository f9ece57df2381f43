"""The README's examples run as written: its workflow file and its Python API code."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from crmkit.starter import write_starter

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(heading: str, lang: str) -> str:
    """The first ``lang`` code block under the README section ``heading``."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(rf"```{lang}\n(.*?)```", section, re.S)
    assert found, f"no {lang} block under '{heading}'"
    return found.group(1)


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The starter's data and template, with the README's workflow file."""
    write_starter(tmp_path, contacts=400, seed=5)
    (tmp_path / "workflow.toml").write_text(_block("A workflow file", "toml"), encoding="utf-8")
    shutil.copy(tmp_path / "data" / "contacts.csv", tmp_path / "contacts.csv")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRMKIT_DB", raising=False)
    return tmp_path


def test_workflow_example_runs(demo: Path) -> None:
    from crmkit import Kernel

    with Kernel.open(demo / "crmkit.db") as k:
        summary = k.run_workflow(demo / "workflow.toml")
    steps = {s["step"]: s for s in summary["steps"]}
    assert steps["import contacts"]["created"] > 300
    assert steps["dedupe"]["merged"] > 0
    assert steps["campaign welcome-back"]["sent"] > 0


def test_python_api_example_runs(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _block("The Python API", "python")
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert re.search(r"^\d+ created, \d+ rejected$", out, re.M)
    assert re.search(r"\{'vip': \d+\}", out)
    assert (demo / "vip.csv").is_file() and (demo / "crm.db").is_file()
    assert os.path.getsize(demo / "vip.csv") > 0
