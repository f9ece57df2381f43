"""Outreach speed: render + enqueue a campaign, and SMTP throughput over one connection.

Issue-5 targets: render and enqueue 100,000 messages in under 5 s; send at least
1,000 messages/s to a local SMTP server over one connection. The default sizes
keep the smoke run short; for the real measurement::

    CRMKIT_BENCH_OUTREACH_CONTACTS=100000 CRMKIT_BENCH_SMTP_MESSAGES=5000 \
        pytest benches/bench_outreach.py --benchmark-enable -s

The SMTP server (aiosmtpd) runs in a child process so that it does not share
the sender's GIL; its CPU time per message is printed next to the sender's,
since the pure-Python server is usually the limit. The peer is smtplib's
``sendmail`` of :mod:`email` messages over one connection.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmkit.builtin.email_channel import EmailChannel
from crmkit.kernel import Kernel
from crmkit.kinds import PluginContext
from crmkit.outreach import run_campaign
from crmkit.records import Message
from crmkit.settings import Settings
from crmkit.store import outbox

CONTACTS = int(os.environ.get("CRMKIT_BENCH_OUTREACH_CONTACTS", "5000"))
SMTP_MESSAGES = int(os.environ.get("CRMKIT_BENCH_SMTP_MESSAGES", "500"))

TEMPLATE = """Hello {{ contact.first_name }} {{ contact.last_name }},

We have news for customers in {{ contact.city | default('your city') }}.
{% if contact.company is defined %}Say hi to the team at {{ contact.company }}.{% endif %}

Unsubscribe: {{ unsubscribe_url }}
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    tmp = tmp_path_factory.mktemp("outreach")
    k = Kernel(Settings(db=tmp / "crm.db", disable_plugin_autoload=True))
    n = CONTACTS
    k.store.upsert_contacts(
        {
            "email": [f"person{i}@example.com" for i in range(n)],
            "first_name": [f"First{i}" for i in range(n)],
            "last_name": [f"Last{i}" for i in range(n)],
            "city": [None if i % 7 == 0 else f"City{i % 100}" for i in range(n)],
            "company": [None if i % 3 else f"Co{i % 50}" for i in range(n)],
            "country": ["US"] * n,
        },
        key="email",
        source="bench",
    )
    yield k
    k.close()


def test_render_and_enqueue(benchmark: Any, kernel: Kernel, tmp_path: Path) -> None:
    rounds = iter(range(1_000_000))

    def run() -> Any:
        i = next(rounds)
        return run_campaign(
            kernel,
            name=f"bench{i}",
            channel="file",
            channel_config={"path": str(tmp_path / "out.jsonl")},
            template=TEMPLATE,
            subject="News for {{ contact.first_name }}",
            unsubscribe_url="https://shop.example/u/{token}",
            send=False,
        )

    t0, c0 = time.perf_counter(), time.process_time()
    res = benchmark.pedantic(run, rounds=1, iterations=1)
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert res.queued == CONTACTS
    counts = outbox.counts(kernel.store, campaign=res.campaign)  # type: ignore[arg-type]
    assert counts == {"queued": CONTACTS}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\nrender+enqueue {CONTACTS:,} messages: {took:.2f} s wall, {cpu:.2f} s CPU "
        f"({CONTACTS / took:,.0f} msg/s; load average {load:.1f})"
    )


SERVER = r"""
import sys, time, asyncio
from aiosmtpd.controller import Controller
class Count:
    n = 0
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if sys.argv[2] == "1":
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses
    async def handle_DATA(self, server, session, envelope):
        Count.n += 1
        return "250 OK"
c = Controller(Count(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("ready", flush=True)
sys.stdin.readline()
print(Count.n, flush=True)
c.stop()
"""


def _server(pipelining: bool) -> tuple[subprocess.Popen[str], int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), "1" if pipelining else "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc, port


def _stop(proc: subprocess.Popen[str]) -> tuple[int, float]:
    """Stop the server: the messages it received and the CPU seconds it used."""
    import resource

    assert proc.stdout is not None and proc.stdin is not None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc.stdin.write("\n")
    proc.stdin.flush()
    received = int(proc.stdout.readline())
    proc.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return received, cpu


def _messages() -> list[Message]:
    return [
        Message(
            key=f"bench:0:{i}:email",
            contact_id=i,
            channel="email",
            to=f"person{i}@example.com",
            subject=f"News for First{i}",
            body=f"Hello First{i},\n\nWe have news.\n\nUnsubscribe: https://shop.example/u/t{i}\n",
            headers={
                "List-Unsubscribe": f"<https://shop.example/u/t{i}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        )
        for i in range(SMTP_MESSAGES)
    ]


@pytest.mark.parametrize("pipelining", [False, True], ids=["plain", "pipelining"])
def test_smtp_throughput_one_connection(benchmark: Any, tmp_path: Path, pipelining: bool) -> None:
    """Messages per second over one connection; the server advertises PIPELINING or not.

    The server's own CPU time per message is printed too: aiosmtpd is pure
    Python and, on a busy machine, usually the limit.
    """
    pytest.importorskip("aiosmtpd")
    proc, port = _server(pipelining)
    try:
        cfg = EmailChannel.Config.model_validate(
            {"host": "127.0.0.1", "port": port, "security": "none", "sender": "news@shop.example"}
        )
        ch = EmailChannel(cfg, PluginContext(base_dir=tmp_path))
        msgs = _messages()
        ch.check()  # connect once, outside the timing

        def send() -> int:
            sent = 0
            for j in range(0, len(msgs), ch.max_batch):
                sent += sum(r.status == "sent" for r in ch.send_batch(msgs[j : j + ch.max_batch]))
            return sent

        t0, c0 = time.perf_counter(), time.process_time()
        sent = benchmark.pedantic(send, rounds=1, iterations=1)
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        ch.close()
        received, server_cpu = _stop(proc)
        assert sent == SMTP_MESSAGES and received == SMTP_MESSAGES
        mode = "pipelining" if pipelining else "plain"
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"\nSMTP ({mode}): {sent:,} messages over one connection in {took:.2f} s "
            f"({sent / took:,.0f} msg/s); sender CPU {cpu / sent * 1e6:,.0f} µs/message, "
            f"server CPU {server_cpu / sent * 1e6:,.0f} µs/message (load average {load:.1f})"
        )
    finally:
        proc.kill()
        proc.wait()


def test_smtp_peer_smtplib_sendmail(benchmark: Any) -> None:
    """The peer: smtplib's ``sendmail`` of :mod:`email` messages over one connection."""
    pytest.importorskip("aiosmtpd")
    import smtplib
    from email.message import EmailMessage
    from email.policy import SMTP

    proc, port = _server(False)
    try:
        msgs = _messages()
        smtp = smtplib.SMTP("127.0.0.1", port)

        def send() -> int:
            for m in msgs:
                em = EmailMessage(policy=SMTP)
                em["From"] = "news@shop.example"
                em["To"] = m.to
                em["Subject"] = m.subject or ""
                for k, v in m.headers.items():
                    em[k] = v
                em.set_content(m.body)
                smtp.sendmail("news@shop.example", [m.to], em.as_bytes())
            return len(msgs)

        t0, c0 = time.perf_counter(), time.process_time()
        sent = benchmark.pedantic(send, rounds=1, iterations=1)
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        smtp.quit()
        received, server_cpu = _stop(proc)
        assert received == sent == SMTP_MESSAGES
        print(
            f"\nSMTP peer (smtplib.sendmail + EmailMessage): {sent / took:,.0f} msg/s; "
            f"sender CPU {cpu / sent * 1e6:,.0f} µs/message, "
            f"server CPU {server_cpu / sent * 1e6:,.0f} µs/message"
        )
    finally:
        proc.kill()
        proc.wait()
