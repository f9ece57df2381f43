"""The outreach commands through click's runner, on a real store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
from click.testing import CliRunner
from test_outreach_support import make_kernel, seed, sqlite_store

from crmkit.builtin.channels import read_outbox
from crmkit.cli import build_cli
from crmkit.plugins import make_plugin_manager
from crmkit.settings import Settings


def _setup(tmp_path: Path) -> tuple[Any, list[int], Path]:
    k = make_kernel(tmp_path)
    ids = seed(k, 4)
    sqlite_store(k).conn.execute("UPDATE contacts SET email = NULL WHERE id = ?", (ids[3],))
    k.close()
    (tmp_path / "body.txt").write_text("Hi {{ contact.first_name }} {{ unsubscribe_url }}")
    camp = tmp_path / "camp.toml"
    camp.write_text(
        'name = "spring"\nchannel = "file"\ntemplate = "body.txt"\nsubject = "Spring"\n'
        'unsubscribe_url = "https://u.example/{token}"\n'
        f'[channel_config]\npath = "{tmp_path / "out.jsonl"}"\nfsync = false\n'
    )
    cli = build_cli(make_plugin_manager(Settings(disable_plugin_autoload=True)))
    return cli, ids, camp


def _run(cli: Any, tmp_path: Path, *args: str) -> Any:
    r = CliRunner().invoke(cli, ["--db", str(tmp_path / "crm.db"), *args])
    assert r.exit_code == 0, (r.output, r.stderr)
    return r


def test_preview_send_list_unsubscribe_and_consent(tmp_path: Path) -> None:
    cli, ids, camp = _setup(tmp_path)
    r = _run(cli, tmp_path, "campaigns", "preview", str(camp))
    assert f"contact {ids[3]}: no email" in r.output
    assert "Hi First0" in r.output
    assert not (tmp_path / "out.jsonl").exists()
    r = _run(cli, tmp_path, "campaigns", "send", str(camp), "--dry-run", "--json")
    data = json.loads(r.output)
    assert data["exclusions"] == [[ids[3], "no email"]] and data["queued"] == 3
    r = _run(cli, tmp_path, "campaigns", "send", str(camp), "--json")
    assert json.loads(r.output)["sent"] == 3
    r = _run(cli, tmp_path, "campaigns", "send", "spring", "--json")  # by stored name
    assert json.loads(r.output)["already"] == 3
    r = _run(cli, tmp_path, "campaigns", "list", "--json")
    assert json.loads(r.output)[0]["deliveries"] == {"sent": 3}
    token = read_outbox(tmp_path / "out.jsonl")[0]["body"].rsplit("/", 1)[1]
    r = _run(cli, tmp_path, "unsubscribe", token)
    assert "withdrawn" in r.output
    r = _run(cli, tmp_path, "consent", "show", str(ids[0]), "--json")
    assert json.loads(r.output)[-1]["status"] == "withdrawn"
    _run(cli, tmp_path, "consent", "grant", str(ids[1]), "--channel", "sms", "--evidence", "form")
    r = _run(cli, tmp_path, "consent", "show", str(ids[1]))
    assert "sms/marketing given (cli, form)" in r.output
    bad = CliRunner().invoke(cli, ["--db", str(tmp_path / "crm.db"), "unsubscribe", "x.y"])
    assert bad.exit_code == 1 and "signature" in str(bad.exception)


def test_outbox_run_status_and_callbacks(tmp_path: Path) -> None:
    cli, _ids, camp = _setup(tmp_path)
    _run(cli, tmp_path, "campaigns", "send", str(camp), "--queue-only")
    r = _run(cli, tmp_path, "outbox", "status", "--json")
    assert json.loads(r.output) == {"queued": 3}
    r = _run(cli, tmp_path, "outbox", "run", "--json")
    assert json.loads(r.output)["sent"] == 3
    entries = read_outbox(tmp_path / "out.jsonl")
    cb = tmp_path / "cb.jsonl"
    cb.write_bytes(
        b"\n".join(
            msgspec.json.encode({"provider_id": e["provider_id"], "status": "delivered"})
            for e in entries
        )
    )
    r = _run(cli, tmp_path, "outbox", "callbacks", str(cb), "--channel", "file", "--lines")
    assert "updated 3" in r.output
    r = _run(cli, tmp_path, "outbox", "status", "--json")
    assert json.loads(r.output) == {"delivered": 3}
    r = _run(cli, tmp_path, "outbox", "resolve", "--as", "resend")
    assert "resolved 0" in r.output
