"""Crash safety: a real sender process is killed (SIGKILL) mid-campaign, then re-run.

The sender is a subprocess sending through a slow ``file`` channel that
leaves a marker before and after each batch's write; the test kills it in
either phase (rows claimed but not written, or written but not recorded).
A second run recovers the dead claims, reconciles them against the outbox
file and sends the rest: every recipient has exactly one message.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_outreach_support import make_kernel, seed, sqlite_store

from crmkit.builtin.channels import read_outbox
from crmkit.store import outbox

SENDER = r'''
import sys, time
from pathlib import Path
from typing import Any
from crmkit.builtin.channels import FileChannel
from crmkit.hookspecs import hookimpl
from crmkit.kernel import Kernel
from crmkit.outreach import run_campaign
from crmkit.settings import Settings
from crmkit.testing import build_plugin_manager

class SlowFile(FileChannel):
    """The file channel, slowly, leaving a marker file before and after each write."""
    name = "slowfile"
    n = 0
    def send_batch(self, messages):
        SlowFile.n += 1
        Path(sys.argv[2], f"pre{SlowFile.n}").touch()
        time.sleep(0.05)
        out = super().send_batch(messages)
        Path(sys.argv[2], f"post{SlowFile.n}").touch()
        time.sleep(0.05)
        return out

class Plugin:
    @hookimpl
    def crmkit_register_channels(self, register: Any) -> None:
        register(SlowFile)

tmp = Path(sys.argv[1])
k = Kernel(Settings(db=tmp / "crm.db", disable_plugin_autoload=True),
           manager=build_plugin_manager([Plugin()]))
r = run_campaign(k, name="big", channel="slowfile",
                 channel_config={"path": str(tmp / "out.jsonl"), "fsync": True},
                 template="Hello {{ contact.first_name }}", batch_size=5)
print(r.sent)
'''


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("phase", ["pre", "post"])
@pytest.mark.parametrize("batch", [1, 4])
def test_sigkill_mid_campaign_then_rerun_sends_each_exactly_once(
    tmp_path: Path, phase: str, batch: int
) -> None:
    k = make_kernel(tmp_path)
    ids = seed(k, 60)
    k.close()
    script = tmp_path / "sender.py"
    script.write_text(SENDER)
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), str(markers)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not (markers / f"{phase}{batch}").exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "sender never reached the batch"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    written = read_outbox(tmp_path / "out.jsonl") if (tmp_path / "out.jsonl").exists() else []
    assert len(written) == 5 * (batch if phase == "post" else batch - 1)
    k = make_kernel(tmp_path)
    assert outbox.counts(sqlite_store(k))["sending"] == 5  # the batch in flight when killed
    k.close()

    rerun = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(markers)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    after = read_outbox(tmp_path / "out.jsonl")
    per_contact: dict[int, int] = {}
    for e in after:
        per_contact[e["contact_id"]] = per_contact.get(e["contact_id"], 0) + 1
    assert per_contact == dict.fromkeys(ids, 1)
    k = make_kernel(tmp_path)
    assert outbox.counts(sqlite_store(k)) == {"sent": 60}
    assert k.store.count_interactions() == 60
