"""The html reporter: unit checks, then the page opened in a real headless Chromium.

The browser tests drive Debian's ``chromium`` over the DevTools protocol on a
pipe (``--remote-debugging-pipe``, no extra package): they record every
request the page makes, every console message and script error, measure the
layout at phone width, take screenshots and print to PDF. They are skipped
when ``chromium`` is not on PATH (``apt-get install -y chromium``).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import random
import select
import shutil
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmkit.builtin.html_report import (
    CHARTS,
    HEAT_HIGH,
    PALETTE,
    bar_chart,
    fmt,
    line_chart,
    render_html,
)
from crmkit.builtin.reporters import HtmlReporter
from crmkit.kernel import Kernel
from crmkit.kinds import PluginContext, Report, Table
from crmkit.plugins import Registry
from crmkit.sample import generate
from crmkit.settings import Settings
from crmkit.testing import build_plugin_manager

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# -- unit ---------------------------------------------------------------------------------


def _report() -> Report:
    return Report(
        title="Test <report>",
        generated_at="2025-01-01T00:00:00+00:00",
        tables=[
            Table(
                title="By country",
                columns=["country", "contacts"],
                rows=[["US", 30], ["<script>alert(1)</script>", 5], ["FR", None]],
                chart="bar",
                section="Customers",
            ),
            Table(
                title="Revenue by month",
                columns=["month", "revenue", "orders"],
                rows=[["2025-01", 10.5, 2], ["2025-02", None, 0], ["2025-03", 30.25, 4]],
                chart="line",
                chart_columns=["revenue"],
                section="Sales",
            ),
            Table(
                title="Overlap",
                columns=["segment", "a", "b"],
                rows=[["a", 10, 3], ["b", 3, 7]],
                chart="heatmap",
                section="Sales",
            ),
            Table(
                title="Funnel",
                columns=["stage", "messages", "% of queued"],
                rows=[["queued", 100, 100.0], ["sent", 90, 90.0], ["converted", 9, 9.0]],
                chart="funnel",
                section="Sales",
            ),
            Table(
                title="Retention",
                columns=["cohort", "customers", "month 0", "month 1", "month 2"],
                rows=[["2025-01", 10, 100.0, 40.0, 20.0], ["2025-02", 5, 100.0, 20.0, None]],
                chart="cohort",
                section="Sales",
            ),
            Table(title="Nothing", columns=["a", "b"], rows=[], chart="bar", section="Sales"),
        ],
    )


def test_page_is_self_contained_and_escaped() -> None:
    page = render_html(_report())
    assert page.startswith("<!DOCTYPE html>")
    assert "http" not in page.replace("http-equiv", ""), "no URL of any kind"
    assert "<script" not in page, "user text is escaped and the page has no script"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "default-src 'none'" in page
    assert "<title>Test &lt;report&gt;</title>" in page
    assert page.count("<figure>") == 5, "one chart per non-empty charted table"
    assert page.count('role="img"') == 7, "full-width charts also come in a compact drawing"
    assert "No data yet." in page
    assert page.count("<table>") == 5
    assert "@media print" in page and 'name="viewport"' in page


def test_chart_accessibility_and_values() -> None:
    svg = bar_chart(_report().tables[0], "x")
    assert svg is not None
    assert 'aria-labelledby="x-t x-d"' in svg
    assert '<title id="x-t">Bar chart: By country</title>' in svg
    assert svg.count("<rect") == 2, "a None value draws no bar"
    line = line_chart(_report().tables[1], "y")
    assert line is not None
    assert line.count("<polyline") == 0, "a gap splits the line into single points"
    assert line.count("<circle") == 2


def test_every_chart_handles_empty_and_odd_tables() -> None:
    for name, draw in CHARTS.items():
        assert draw(Table(title="t", columns=["a", "b"], rows=[]), "e") is None, name
        odd = Table(title="t", columns=["a", "b", "c"], rows=[["x", "text", None], [None, 0, 0]])
        draw(odd, "o")  # no exception


def test_fmt() -> None:
    assert fmt(1234567) == "1,234,567"
    assert fmt(12.5) == "12.5"
    assert fmt(100.0) == "100"
    assert fmt(3.14159) == "3.14"
    assert fmt(None) == "–"
    assert fmt(["a", 1]) == "a, 1"


def test_reporter_registered_and_writes_path(tmp_path: Path) -> None:
    registry = Registry(build_plugin_manager(), strict=True)
    assert registry.get("reporter", "html").owner == "builtin.reporters"
    cfg = HtmlReporter.Config.model_validate({"path": "out/r.html", "title": "Mine"})
    HtmlReporter(cfg, PluginContext(base_dir=tmp_path)).render(_report(), None)
    page = (tmp_path / "out" / "r.html").read_text(encoding="utf-8")
    assert "<h1>Mine</h1>" in page


def test_reporter_requires_path() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        HtmlReporter.Config.model_validate({})


# -- browser ------------------------------------------------------------------------------


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe."""

    def __init__(self, profile: Path) -> None:
        assert CHROMIUM is not None
        to_browser_r, self._w = os.pipe()
        self._r, from_browser_w = os.pipe()

        def wire() -> None:
            # Chromium reads commands on fd 3 and writes replies on fd 4.
            a = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                # No network: any request the page tries fails instead of leaving the machine.
                "--proxy-server=127.0.0.1:9",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "about:blank",
            ],
            preexec_fn=wire,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buf += chunk
        msg, _, self._buf = self._buf.partition(b"\0")
        out: dict[str, Any] = json.loads(msg)
        return out

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, session: bool = False
    ) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + 60
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._read(deadline))

    def open(self, url: str, width: int, height: int) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
            session=True,
        )
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expr: str) -> Any:
        res = self.call(
            "Runtime.evaluate", {"expression": expr, "returnByValue": True}, session=True
        )
        return res["result"].get("value")

    def requests(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        ]

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions and browser log errors."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
                out.append(f"console.{p['type']}: {p.get('args')}")
            elif m == "Runtime.exceptionThrown":
                out.append(f"exception: {p.get('exceptionDetails', {}).get('text')}")
            elif m == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                out.append(f"log: {p['entry'].get('text')}")
        return out

    def screenshot(self) -> bytes:
        res = self.call(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True},
            session=True,
        )
        return base64.b64decode(res["data"])

    def pdf(self) -> bytes:
        return base64.b64decode(self.call("Page.printToPDF", {}, session=True)["data"])

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._r)
        os.close(self._w)


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an 8-bit RGB or RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    i = 0
    for _ in range(height):
        f = raw[i]
        line = bytearray(raw[i + 1 : i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = prev[x]
            c = prev[x - channels] if x >= channels else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[x] = (line[x] + pred) & 255
        prev = line
        rgb = bytes(line) if channels == 3 else bytes(v for j, v in enumerate(line) if j % 4 != 3)
        rows.append(rgb)
    return width, height, rows


def _colours(rows: list[bytes], step: int = 2) -> dict[tuple[int, int, int], int]:
    out: dict[tuple[int, int, int], int] = {}
    for row in rows[::step]:
        for x in range(0, len(row), 3 * step):
            px = (row[x], row[x + 1], row[x + 2])
            out[px] = out.get(px, 0) + 1
    return out


def _near(counts: dict[tuple[int, int, int], int], rgb: tuple[int, int, int], tol: int = 8) -> int:
    return sum(
        n
        for px, n in counts.items()
        if all(abs(a - b) <= tol for a, b in zip(px, rgb, strict=True))
    )


def _hex(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not on PATH (apt-get install -y chromium)"
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("chromium is not on PATH (apt-get install -y chromium)")
    b = Browser(tmp_path_factory.mktemp("profile"))
    yield b
    b.close()


@pytest.fixture(scope="module")
def full_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every report over a generated base with segments, an outbox and merges."""
    root = tmp_path_factory.mktemp("html")
    info = generate(root / "data", contacts=800, seed=9)
    k = Kernel(Settings(db=root / "crm.db", disable_plugin_autoload=True))
    k.import_file(info.contacts_path)
    assert info.interactions_path is not None
    k.import_file(info.interactions_path)
    _populate(k)
    out = root / "report.html"
    k.render(k.report("all"), "html", {"path": str(out)})
    k.close()
    return out


def _populate(k: Kernel) -> None:
    rng = random.Random(4)
    conn = k.store.conn  # type: ignore[attr-defined]
    ids = [r[0] for r in conn.execute("SELECT id FROM contacts WHERE merged_into IS NULL")]
    t0 = int(conn.execute("SELECT MAX(occurred_at) FROM interactions").fetchone()[0])
    stages = ["lead", "new_customer", "repeat", "at_risk", "churned"]
    with k.store.transaction():
        conn.executemany(
            "UPDATE contacts SET lifecycle_stage = ? WHERE id = ?",
            [(rng.choice(stages), i) for i in ids],
        )
        conn.executemany(
            "INSERT INTO segments (name, created_at, updated_at) VALUES (?, 0, 0)",
            [("vip",), ("at_risk",)],
        )
        for run in (1, 2, 3):
            conn.execute(
                "INSERT INTO segment_runs (id, started_at, as_of) VALUES (?, ?, ?)",
                (run, t0 - (4 - run) * 86400, t0 - (4 - run) * 86400),
            )
            for seg in ("vip", "at_risk"):
                conn.executemany(
                    "INSERT INTO memberships (segment, contact_id, entered_at, entered_run) "
                    "VALUES (?, ?, ?, ?)",
                    [(seg, i, t0, run) for i in ids if rng.random() < 0.05],
                )
        statuses = ["delivered"] * 6 + ["sent", "bounced", "complained", "failed"]
        conn.executemany(
            "INSERT INTO deliveries (key, campaign, contact_id, channel, status, created_at, "
            "updated_at) VALUES (?, ?, ?, 'email', ?, ?, 0)",
            [
                (
                    f"k{n}",
                    rng.choice(["spring", "summer"]),
                    i,
                    rng.choice(statuses),
                    t0 - 40 * 86400,
                )
                for n, i in enumerate(ids[:400])
            ],
        )
        conn.executemany(
            "INSERT INTO merges (survivor_id, merged_ids, score, created_at) VALUES (?, ?, ?, ?)",
            [(ids[n], json.dumps([ids[-n - 1]]), rng.uniform(0.7, 1.0), t0) for n in range(20)],
        )
        k.store.declare_attributes({"rfm_r": "integer", "rfm_f": "integer"}, source="test")
    k.store.set_attributes(
        ids, {"rfm_r": [rng.randint(1, 5) for _ in ids], "rfm_f": [rng.randint(1, 5) for _ in ids]}
    )


@needs_chromium
def test_browser_reports_requests_and_errors(browser: Browser, tmp_path: Path) -> None:
    """The checks below can fail: a page that fetches and logs is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>x</title></head><body>'
        '<img src="http://example.invalid/x.png" alt=""><script>console.error("boom")</script>'
        "</body></html>",
        encoding="utf-8",
    )
    browser.open(bad.as_uri(), 800, 600)
    assert "http://example.invalid/x.png" in browser.requests()
    assert any("boom" in p for p in browser.problems())


@needs_chromium
def test_report_in_browser(browser: Browser, full_page: Path, tmp_path: Path) -> None:
    browser.open(full_page.as_uri(), 1200, 900)
    assert browser.requests() == [full_page.as_uri()], "no request besides the page itself"
    assert browser.problems() == []
    shown = "[...document.querySelectorAll('svg[role=img]')].filter(s => s.getClientRects().length)"
    assert browser.evaluate(f"{shown}.length") >= 15
    assert browser.evaluate(f"{shown}.every(s => s.getBoundingClientRect().height > 40)"), (
        "every chart is laid out with a real size"
    )
    assert browser.evaluate("document.querySelectorAll('figure').length") == browser.evaluate(
        f"{shown}.length"
    ), "one drawing shown per chart"
    png = browser.screenshot()
    (tmp_path / "desktop.png").write_bytes(png)
    width, height, rows = decode_png(png)
    assert width == 1200 and height > 3000
    counts = _colours(rows)
    assert len(counts) > 50, "not a blank page"
    assert _near(counts, _hex(PALETTE[0])) > 2000, "bars and lines in the first series colour"
    assert _near(counts, _hex(PALETTE[1])) > 100, "a second series"
    assert _near(counts, HEAT_HIGH, tol=12) > 200, "heat map cells at the top of the scale"
    assert _near(counts, _hex("#3a9a5b")) > 50, "the funnel's converted stage"


@needs_chromium
def test_report_on_a_phone_and_in_print(browser: Browser, full_page: Path, tmp_path: Path) -> None:
    browser.open(full_page.as_uri(), 390, 800)
    assert browser.problems() == []
    overflow = browser.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "no horizontal scrolling of the page on a phone"
    clipped = browser.evaluate(
        "[...document.querySelectorAll('.chart')].filter(c => c.getClientRects().length"
        " && c.scrollWidth > c.clientWidth + 1).length"
    )
    assert clipped == 0, "every chart fits a phone's width"
    png = browser.screenshot()
    (tmp_path / "phone.png").write_bytes(png)
    width, _h, rows = decode_png(png)
    assert width == 390
    assert _near(_colours(rows), _hex(PALETTE[0])) > 500
    pdf = browser.pdf()
    assert pdf.startswith(b"%PDF")
    assert pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages") >= 3
