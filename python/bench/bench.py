"""Cost per call of auditbuf's record calls beside the usual Python ways of handing an
event to a background writer, in alternating rounds of one run. Reported, not asserted.

    python python/bench/bench.py [--calls N] [--rounds R]

Lossless: the pipeline uses overflow="block" and a null sink ({"sink": {"type": "null"}}),
and the rejected fraction is printed. Each number is the median over rounds of the mean
cost of N calls, timed in chunks of 1000 with the baselines' queues drained in between.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import queue
import statistics
import sys
import time
from typing import Any, Callable, Dict, List

import auditbuf

try:
    import orjson
except ImportError:  # pragma: no cover - the baseline is skipped
    orjson = None

# Ten fields, 10 strings and numbers, ~400 bytes once encoded with version and timestamp.
EVENT: Dict[str, Any] = {
    "event_type": "gateway.signal.received",
    "event_category": "gateway",
    "event_action": "received",
    "event_outcome": "success",
    "correlation_id": "rr-2026-001-7f3c9a2e-4b1d-4e8a-9c6f",
    "actor_id": "system:serviceaccount:kubernaut-system:gateway",
    "resource_id": "fp-abc123def456abc123def456abc123def456",
    "namespace": "payment-production",
    "duration_ms": 1234,
    "message": "Signal HighMemoryUsage received from Prometheus Alertmanager for pod payment-api-7d9f",
}


CHUNK = 1000


def measure(fn: Callable[[], None], calls: int, drain: Callable[[], None]) -> float:
    """Mean nanoseconds per call of `fn` over `calls` calls, timed in chunks of CHUNK
    calls; the baselines' queues are drained between chunks, untimed (a consumer thread
    would do it), so that they do not grow."""
    spent = 0
    for _ in range(calls // CHUNK):
        started = time.perf_counter_ns()
        for _ in range(CHUNK):
            fn()
        spent += time.perf_counter_ns() - started
        drain()
    return spent / (calls // CHUNK * CHUNK)


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--calls", type=int, default=200_000)
    args.add_argument("--rounds", type=int, default=5)
    opts = args.parse_args()

    pipeline = auditbuf.Pipeline(
        config={"sink": {"type": "null"}}, overflow="block", queue_capacity=10_000
    )
    event_bytes = json.dumps(EVENT, separators=(",", ":")).encode()
    record = pipeline.record

    simple: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
    bounded: "queue.Queue[Any]" = queue.Queue()
    log_queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
    logger = logging.getLogger("bench.audit")
    logger.propagate = False
    logger.addHandler(logging.handlers.QueueHandler(log_queue))
    logger.setLevel(logging.INFO)

    cases: Dict[str, Callable[[], None]] = {
        "auditbuf record(dict), 10 fields": lambda: record(EVENT),
        "auditbuf record(bytes)": lambda: record(event_bytes),
        "json.dumps + queue.Queue.put_nowait": lambda: bounded.put_nowait(json.dumps(EVENT)),
        "logging + QueueHandler": lambda: logger.info("audit %s", "x", extra={"audit": EVENT}),
    }
    if orjson is not None:
        cases["orjson.dumps + SimpleQueue.put"] = lambda: simple.put(orjson.dumps(EVENT))
    cases["SimpleQueue.put of ready bytes"] = lambda: simple.put(event_bytes)

    def drain() -> None:
        for q in (simple, log_queue):
            while not q.empty():
                q.get_nowait()
        with bounded.mutex:
            bounded.queue.clear()

    results: Dict[str, List[float]] = {name: [] for name in cases}
    for fn in cases.values():  # warm-up
        measure(fn, 10_000, drain)
    for _ in range(opts.rounds):
        for name, fn in cases.items():
            results[name].append(measure(fn, opts.calls, drain))

    report = pipeline.close(timeout=30)
    stats = report.stats
    median = {name: statistics.median(v) for name, v in results.items()}
    width = max(map(len, median))
    print(f"Python {sys.version.split()[0]}, {opts.rounds} rounds of {opts.calls} calls, "
          f"event {len(event_bytes)} bytes as compact JSON")
    for name, ns in median.items():
        print(f"  {name:<{width}}  {ns / 1000:6.3f} µs per call")
    d, b = median["auditbuf record(dict), 10 fields"], median["auditbuf record(bytes)"]
    print("ratios:")
    for base in (
        "orjson.dumps + SimpleQueue.put",
        "json.dumps + queue.Queue.put_nowait",
        "logging + QueueHandler",
    ):
        if base in median:
            print(f"  record(dict) / {base}: {d / median[base]:.2f}")
    print(f"  record(bytes) / record(dict): {b / d:.2f}")
    total = stats.recorded + stats.rejected.total()
    print(
        f"lossless: recorded {stats.recorded}, delivered {stats.delivered}, rejected "
        f"{stats.rejected.total()} ({stats.rejected.total() / max(total, 1):.2%}), "
        f"consistent {stats.is_consistent()}"
    )


if __name__ == "__main__":
    main()
