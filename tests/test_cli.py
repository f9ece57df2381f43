"""The command line, through click's runner and as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmkit.cli import build_cli, main
from crmkit.plugins import make_plugin_manager
from crmkit.settings import Settings


@pytest.fixture
def cli():  # type: ignore[no-untyped-def]
    return build_cli(make_plugin_manager(Settings(disable_plugin_autoload=True)))


def test_plugins_json_lists_builtins_and_hooks(cli) -> None:  # type: ignore[no-untyped-def]
    r = CliRunner().invoke(cli, ["plugins", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    by = {p["name"]: p for p in data["plugins"]}
    assert "source:csv" in by["builtin.sources"]["provides"]
    assert "crmkit_register_sources" in by["builtin.sources"]["hooks"]


def test_quickstart_end_to_end(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    demo = tmp_path / "demo"
    r = runner.invoke(cli, ["init", str(demo), "--contacts", "300"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["run", str(demo / "workflow.toml"), "--json"])
    assert r.exit_code == 0, r.output + r.stderr
    summary = json.loads(r.stdout)
    steps = {s["step"]: s for s in summary["steps"]}
    assert steps["import contacts"]["created"] > 200
    assert steps["import interactions"]["interactions"] > 0
    merged = steps["dedupe"]["merged"]
    assert merged > 0 and steps["dedupe"]["contacts"] == steps["import contacts"]["created"]
    sent = steps["campaign welcome-back"]["sent"]
    outbox = demo / "out" / "outbox.jsonl"
    assert sent > 0 and len(outbox.read_text().splitlines()) == sent
    # Safe to re-run: nothing imported twice, nothing sent twice.
    r = runner.invoke(cli, ["run", str(demo / "workflow.toml"), "--json"])
    assert r.exit_code == 0, r.output
    steps2 = {s["step"]: s for s in json.loads(r.stdout)["steps"]}
    assert steps2["import contacts"]["created"] == 0
    assert steps2["dedupe"]["merged"] == 0
    assert steps2["dedupe"]["contacts"] == steps["dedupe"]["contacts"] - merged
    assert steps2["campaign welcome-back"]["sent"] == 0
    assert len(outbox.read_text().splitlines()) == sent
    db = str(demo / "crmkit.db")
    r = runner.invoke(cli, ["--db", db, "contacts", "find", "--json", "--limit", "3"])
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 3
    cid = json.loads(r.stdout)[0]["id"]
    r = runner.invoke(cli, ["--db", db, "contacts", "show", str(cid), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["contact"]["id"] == cid


def test_workflow_errors_are_all_reported_with_paths(tmp_path: Path) -> None:
    wf = tmp_path / "w.toml"
    wf.write_text(
        '[[sources]]\nuse = "cvs"\npath = "x.csv"\n\n[[sources]]\nuse = "csv"\npth = "x.csv"\n\n'
        '[[reports]]\nuse = "terminal"\ncolour = true\n'
    )
    proc = subprocess.run(
        [sys.executable, "-c", "from crmkit.cli import main; main()", "run", str(wf)],
        capture_output=True,
        text=True,
        env={"CRMKIT_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": "/usr/bin"},
    )
    assert proc.returncode == 1
    err = proc.stderr
    assert "sources[0].use" in err and "did you mean 'csv'" in err
    assert "sources[1].pth: unknown field" in err
    assert "reports[0].colour: unknown field" in err
    assert "Traceback" not in err


def test_usage_error_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["import"])
    assert e.value.code == 2


def test_missing_file_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--db", str(tmp_path / "a.db"), "import", str(tmp_path / "nope.csv")])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope.csv" in err and "Traceback" not in err


def test_import_declares_types_and_reads_again_with_full(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "c.csv"
    f.write_text("Email,Member No,Score\na@x.com,0012,7\nb@x.com,0034,8\n")
    db = ["--db", str(tmp_path / "crm.db")]
    r = CliRunner().invoke(
        cli,
        [*db, "import", str(f), "--type", "Member No=string", "--type", "score=number", "--json"],
    )
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["attribute_types"] == {"member_no": "string", "score": "number"}
    assert rep["inferred"] == [] and rep["created"] == 2
    from crmkit.kernel import Kernel

    with Kernel.open(tmp_path / "crm.db", disable_plugin_autoload=True) as k:
        _, cols = k.store.contact_columns(["member_no", "score"])
        assert cols == {"member_no": ["0012", "0034"], "score": [7.0, 8.0]}
    again = json.loads(CliRunner().invoke(cli, [*db, "import", str(f), "--json"]).output)
    assert again["rows"] == 0 and again["resumed"]
    full = json.loads(CliRunner().invoke(cli, [*db, "import", str(f), "--full", "--json"]).output)
    assert full["rows"] == 2 and full["updated"] == 2
    bad = CliRunner().invoke(cli, [*db, "import", str(f), "--type", "score=float"])
    assert bad.exit_code == 2 and "COLUMN=TYPE" in bad.output
