"""auditbuf.prometheus: the collector computes kubernaut's metric names from stats()."""

from __future__ import annotations

import threading
import time

import pytest

prometheus_client = pytest.importorskip("prometheus_client")

import auditbuf  # noqa: E402
from auditbuf.prometheus import AuditbufCollector  # noqa: E402
from conftest import Collect  # noqa: E402


def test_metrics_follow_the_counters(collect: Collect) -> None:
    registry = prometheus_client.CollectorRegistry()
    release = threading.Event()
    p = auditbuf.Pipeline(
        sink=lambda b: release.wait(10) and collect(b),
        service="gateway",
        queue_capacity=3,
        flush_interval=0.001,
    )
    registry.register(AuditbufCollector(p))
    with pytest.raises(auditbuf.InvalidEvent):
        p.record(b"[]")
    p.record({"event_type": "a"})
    time.sleep(0.05)
    p.record({"event_type": "b"})
    p.record({"event_type": "c"})
    with pytest.raises(auditbuf.Full):
        p.record({"event_type": "d"})

    def value(name: str, **labels: str) -> float:
        v = registry.get_sample_value(name, {"service": "gateway", **labels})
        assert v is not None, name
        return v

    assert value("audit_events_buffered_total") == 3
    assert value("audit_events_dropped_total", reason="queue_full") == 1
    assert value("audit_events_dropped_total", reason="not_an_object") == 1
    assert value("audit_events_dropped_total", reason="shutdown") == 0
    assert value("audit_buffer_size") == 3
    assert value("audit_events_written_total") == 0
    release.set()
    p.close(timeout=10)
    assert value("audit_events_written_total") == 3
    assert value("audit_buffer_size") == 0
    assert value("auditbuf_sends_total") >= 1
    for name in [
        "audit_batches_failed_total",
        "audit_retries_total",
        "auditbuf_events_redelivered_total",
        "auditbuf_endpoint_refusals_total",
        "auditbuf_events_recovered_total",
        "audit_backing_store_events",
    ]:
        assert value(name) == 0
    for reason in ["rejected", "too_large", "store"]:
        assert value("audit_events_dead_lettered_total", reason=reason) == 0
    assert value("audit_events_dropped_total", reason="oldest") == 0
    # Every audit_* sample of the collector is in the library's own text, same value.
    own = _samples(p.metrics_text())
    ours = {
        (s.name, s.labels.get("reason", "")): s.value
        for m in registry.collect()
        for s in m.samples
        if s.name.startswith("audit_") and not s.name.endswith("_created")
    }
    assert ours
    for key, v in ours.items():
        assert own.get(key) == v, (key, v, own.get(key))
    assert ("audit_write_duration_seconds_count", "") in own
    assert ("audit_buffer_capacity", "") in own
    text = prometheus_client.generate_latest(registry).decode()
    assert 'audit_events_dropped_total{reason="queue_full",service="gateway"} 1.0' in text


def _samples(text: str) -> "dict[tuple[str, str], float]":
    """name, reason -> value from the classic text format (buckets left out)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or "le=" in line:
            continue
        head, value = line.rsplit(" ", 1)
        name, _, labels = head.partition("{")
        reason = ""
        for pair in labels.rstrip("}").split(","):
            k, _, v = pair.partition("=")
            if k == "reason":
                reason = v.strip('"')
        out[(name, reason)] = float(value)
    return out
