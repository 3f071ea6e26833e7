"""Shared fixtures: a real HTTP receiver on 127.0.0.1 and a collecting callable sink."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

import auditbuf

VECTORS = Path(__file__).resolve().parents[2] / "testdata" / "events"


class Receiver:
    """A DataStorage-like receiver: stores every event of every batch it is sent and
    answers with the next scripted status (201 when the script is empty)."""

    def __init__(self) -> None:
        self.events: List[bytes] = []
        self.requests: List[tuple[str, dict[str, str], bytes]] = []
        self.script: List[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests.append(
                        (self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    status = receiver.script.pop(0) if receiver.script else 201
                    if status < 300:
                        for event in json.loads(body):
                            receiver.events.append(
                                json.dumps(event, separators=(",", ":")).encode()
                            )
                reply = b'{"message":"ok"}' if status < 300 else b'{"detail":"no"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class Collect:
    """A sink callable keeping every event it is given."""

    def __init__(self) -> None:
        self.events: List[bytes] = []
        self.batches = 0
        self.lock = threading.Lock()

    def __call__(self, batch: List[bytes]) -> None:
        assert isinstance(batch, list) and all(isinstance(e, bytes) for e in batch)
        with self.lock:
            self.events.extend(batch)
            self.batches += 1

    def json(self) -> List[dict]:
        return [json.loads(e) for e in self.events]


@pytest.fixture
def collect() -> Collect:
    return Collect()


def assert_accounted(stats: auditbuf.Stats, delivered: Optional[int] = None) -> None:
    """The accounting invariant, term by term."""
    assert stats.is_consistent(), stats
    assert (
        stats.recorded + stats.recovered
        == stats.delivered
        + stats.dead_lettered
        + stats.failed
        + stats.dropped.shutdown
        + stats.dropped.store_full
        + stats.dropped.damaged
        + stats.dropped.oldest
        + stats.in_flight
        + stats.queued
        + stats.stored
    ), stats
    if delivered is not None:
        assert stats.delivered == delivered, stats
