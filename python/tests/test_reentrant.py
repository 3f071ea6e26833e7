"""A sink that calls back into its own pipeline (on the flush thread), a pipeline in a
reference cycle through its sink, and Python code that changes an event while it is
encoded: nothing hangs, leaks or prints a panic, and the accounting holds."""

from __future__ import annotations

import datetime
import gc
import os
import threading
import time
import weakref
from typing import Any, Dict, List, Optional

import pytest

import auditbuf
from conftest import assert_accounted


def test_a_sink_recording_into_its_full_block_queue_is_turned_away_at_once() -> None:
    got: Dict[str, int] = {"ok": 0, "full": 0, "closed": 0}
    holder: Dict[str, auditbuf.Pipeline] = {}

    def sink(batch: List[bytes]) -> None:
        for event in batch:
            if b'"depth":0' in event:
                for child in range(3):
                    try:
                        holder["p"].record({"depth": 1, "child": child})
                        got["ok"] += 1
                    except auditbuf.Full:
                        got["full"] += 1
                    except auditbuf.Closed:
                        got["closed"] += 1

    p = auditbuf.Pipeline(
        sink=sink, queue_capacity=4, batch_size=2, flush_interval=0.005,
        overflow="block", block_timeout=30,
    )
    holder["p"] = p
    started = time.monotonic()
    for i in range(20):
        p.record({"depth": 0, "i": i})
    assert p.flush(timeout=30).completed
    report = p.close(timeout=30)
    assert time.monotonic() - started < 20, "the sink waited for itself"
    assert report.completed
    s = report.stats
    assert got["ok"] + got["full"] + got["closed"] == 60 and got["ok"] > 0, got
    assert s.recorded == 20 + got["ok"], (got, s)
    assert (s.rejected.queue_full, s.rejected.closed) == (got["full"], got["closed"]), (got, s)
    assert_accounted(s, delivered=s.recorded)


def test_a_sink_flushing_and_closing_its_own_pipeline_returns_at_once() -> None:
    calls: List[Any] = []
    holder: Dict[str, auditbuf.Pipeline] = {}

    gate = threading.Lock()

    def sink(batch: List[bytes]) -> None:
        with gate:
            call_back()

    def call_back() -> None:
        p = holder.get("p")
        if p is not None and not calls:
            started = time.monotonic()
            flushed = p.flush(timeout=20).completed
            calls.append(("flush", time.monotonic() - started, flushed))
            started = time.monotonic()
            closed = p.close(timeout=20).completed
            calls.append(("close", time.monotonic() - started, closed))

    p = auditbuf.Pipeline(sink=sink, batch_size=5, flush_interval=0.005)
    # The sink's first call waits for the gate: it finds all 10 recorded and the handle.
    with gate:
        for i in range(10):
            p.record({"i": i})
        holder["p"] = p
    report = p.close(timeout=20)
    assert [c[0] for c in calls] == ["flush", "close"], calls
    for name, took, completed in calls:
        assert not completed and took < 1, (name, took)
    assert report.completed
    assert_accounted(report.stats, delivered=10)


def _flush_threads() -> int:
    """This process's threads named auditbuf-flush (Linux)."""
    n = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                n += f.read().strip() == "auditbuf-flush"
        except OSError:
            pass
    return n


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
def test_a_pipeline_whose_sink_refers_back_to_it_is_collected_and_delivers() -> None:
    delivered: List[bytes] = []

    class Auditor:
        def __init__(self) -> None:
            self.out = delivered
            self.pipeline = auditbuf.Pipeline(sink=self.send, flush_interval=60)

        def send(self, batch: List[bytes]) -> None:
            # Uses its object: still whole when the collector has the pipeline closed.
            self.out.extend(batch)

    gc.collect()
    before = _flush_threads()
    refs = []
    for i in range(10):
        a = Auditor()
        a.pipeline.record({"event_type": "x", "i": i})
        refs.append(weakref.ref(a.pipeline))
        del a
    gc.collect()
    assert all(r() is None for r in refs), "a pipeline in a cycle was not collected"
    # Each was closed as dropping it would: what it held went through its sink.
    assert sorted(e.count(b'"i":') for e in delivered) == [1] * 10, delivered
    deadline = time.monotonic() + 10
    while _flush_threads() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _flush_threads() <= before, "flush threads left behind"


def test_python_code_that_resizes_the_dict_being_encoded_raises_without_a_panic(
    capfd: pytest.CaptureFixture[str],
) -> None:
    p = auditbuf.Pipeline(sink=lambda batch: None)
    event: Dict[str, Any] = {"event_type": "x"}

    class Meddling(datetime.tzinfo):
        def utcoffset(self, dt: Optional[datetime.datetime]) -> datetime.timedelta:
            event["added"] = 1
            return datetime.timedelta(0)

        def dst(self, dt: Optional[datetime.datetime]) -> None:
            return None

    event["when"] = datetime.datetime(2026, 1, 1, tzinfo=Meddling())
    with pytest.raises(RuntimeError, match="changed size during iteration"):
        p.record(event)
    nested = {"data": {"when": datetime.datetime(2026, 1, 1, tzinfo=Meddling())}}
    event = nested["data"]
    with pytest.raises(RuntimeError, match="changed size during iteration"):
        p.record_event(
            event_type="x", event_category="c", event_action="a", event_outcome="success",
            correlation_id="r", event_data=nested,
        )
    # Keys deleted and as many added: the size is the same, the members are not.
    event = {"event_type": "x", "a": 1, "b": 2}

    class Swapping(datetime.tzinfo):
        def utcoffset(self, dt: Optional[datetime.datetime]) -> datetime.timedelta:
            if "a" in event:
                del event["a"]
                event["c"] = 3
            return datetime.timedelta(0)

        def dst(self, dt: Optional[datetime.datetime]) -> None:
            return None

    event["when"] = datetime.datetime(2026, 1, 1, tzinfo=Swapping())
    del event["b"]
    with pytest.raises(RuntimeError, match="keys changed during iteration"):
        p.record(event)
    report = p.close(timeout=5)
    assert report.stats.rejected.serialize == 3, report.stats
    assert_accounted(report.stats, delivered=0)
    err = capfd.readouterr().err
    assert "panicked" not in err, err
