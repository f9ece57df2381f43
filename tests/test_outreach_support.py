"""Helpers shared by the outreach and channel tests (no tests here)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from crmkit.kernel import Kernel
from crmkit.settings import Settings
from crmkit.store.sqlite import SQLiteStore


def make_kernel(tmp_path: Path, *, manager: Any = None) -> Kernel:
    """A kernel over a fresh SQLite store in ``tmp_path``, no external plugins."""
    return Kernel(Settings(db=tmp_path / "crm.db", disable_plugin_autoload=True), manager=manager)


def sqlite_store(k: Kernel) -> SQLiteStore:
    """The kernel's store, which outbox operations need to be SQLite."""
    assert isinstance(k.store, SQLiteStore)
    return k.store


def seed(k: Kernel, n: int, **extra: list[Any]) -> list[int]:
    """``n`` contacts ``p<i>@example.com`` named ``First<i>``; returns their ids."""
    cols: dict[str, list[Any]] = {
        "email": [f"p{i}@example.com" for i in range(n)],
        "first_name": [f"First{i}" for i in range(n)],
        "last_name": [f"Last{i}" for i in range(n)],
        "phone": [f"+1555000{i:04d}" for i in range(n)],
        "country": ["US" if i % 2 == 0 else "FR" for i in range(n)],
    }
    cols.update(extra)
    res = k.store.upsert_contacts(cols, key="email", source="test")
    return [i for i in res.ids if i is not None]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Recorder:
    """A real HTTP server on 127.0.0.1 that records requests and answers from a script.

    ``script`` holds ``(status, headers, body)`` answers used in turn; when it
    is empty, ``default`` answers. ``delay`` seconds are slept before answering.
    """

    def __init__(self, default: tuple[int, dict[str, str], bytes] = (200, {}, b"{}")) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.script: list[tuple[int, dict[str, str], bytes]] = []
        self.default = default
        self.delay = 0.0
        self.answer_fn: Any = None
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                import time as _t

                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n)
                headers = {k.lower(): v for k, v in self.headers.items()}
                rec.requests.append((self.path, headers, body))
                if rec.answer_fn is not None:
                    status, extra, out = rec.answer_fn(self.path, headers, body)
                else:
                    status, extra, out = rec.script.pop(0) if rec.script else rec.default
                if rec.delay:
                    _t.sleep(rec.delay)
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        """Shut the server down."""
        self.server.shutdown()
        self.server.server_close()
