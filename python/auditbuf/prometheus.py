"""Pipeline counters as Prometheus metrics, for ``prometheus_client`` (install with
``pip install 'auditbuf[prometheus]'``).

    from prometheus_client import REGISTRY
    from auditbuf.prometheus import AuditbufCollector

    REGISTRY.register(AuditbufCollector(pipeline))

Every value is read from ``pipeline.stats()`` at scrape time (one consistent snapshot per
scrape), labelled with the pipeline's ``service``. The names, labels and reasons are the
Rust library's (``pipeline.metrics_text()`` gives them as text, with the write-duration
histogram and the backing store's gauges that ``stats()`` does not carry), which follow
kubernaut's ``pkg/audit``:

========================================== ======= ========================================
``audit_events_buffered_total``            counter events accepted by ``record``
``audit_events_dropped_total{reason}``     counter events lost: turned away (``queue_full``,
                                                   ``block_timeout``, ``closed``,
                                                   ``invalid_json``, … ``store_error``,
                                                   ``store_full``) or given up after
                                                   acceptance (``oldest``, ``store_full``,
                                                   ``shutdown``, ``damaged``, ``failed``)
``audit_events_written_total``             counter events the receiver acknowledged
``audit_events_dead_lettered_total{reason}`` counter refused for good: ``rejected``,
                                                   ``too_large``, ``store``
``audit_batches_failed_total``             counter batches whose retries ran out
``audit_retries_total``                    counter sends answered with a retryable failure
``audit_buffer_size``                      gauge   events queued or in flight
========================================== ======= ========================================

and auditbuf's own (as the Go package names them): ``auditbuf_events_recovered_total``,
``auditbuf_events_redelivered_total``, ``auditbuf_sends_total``,
``auditbuf_endpoint_refusals_total``, ``auditbuf_events_queued``,
``auditbuf_events_in_flight``; and ``audit_backing_store_events`` (events waiting in the
backing store). The write-duration histogram, the queue's capacity and the store's bytes
and age are in ``Pipeline.metrics_text()`` only.
"""

from __future__ import annotations

from typing import Iterator, List, Tuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import Pipeline, Stats

# The turned-away reasons, in the Rust library's order (store_full is added below: a
# refused spill and an accepted event the store could not keep are both store_full).
_REJECTED = (
    "queue_full",
    "block_timeout",
    "closed",
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "too_large",
    "missing_field",
    "invalid_field",
    "serialize",
    "store_error",
)


def _dropped(s: Stats) -> List[Tuple[str, int]]:
    d = s.dropped
    return [(r, getattr(s.rejected, r)) for r in _REJECTED] + [
        ("store_full", s.rejected.store_full + d.store_full),
        ("oldest", d.oldest),
        ("shutdown", d.shutdown),
        ("damaged", d.damaged),
        ("failed", s.failed),
    ]


def _dead_lettered(s: Stats) -> List[Tuple[str, int]]:
    too_large, by_store = s.dead_lettered_too_large, s.dead_lettered_by_store
    return [
        ("rejected", max(0, s.dead_lettered - too_large - by_store)),
        ("too_large", too_large),
        ("store", by_store),
    ]


class AuditbufCollector(Collector):
    """Collects a pipeline's counters on each scrape. ``prefix`` replaces ``audit`` in the
    kubernaut names."""

    def __init__(self, pipeline: Pipeline, *, prefix: str = "audit") -> None:
        self.pipeline = pipeline
        self.prefix = prefix

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        s = self.pipeline.stats()
        service = self.pipeline.service
        p = self.prefix

        def counter(name: str, doc: str, value: int) -> CounterMetricFamily:
            m = CounterMetricFamily(name, doc, labels=["service"])
            m.add_metric([service], value)
            return m

        def gauge(name: str, doc: str, value: int) -> GaugeMetricFamily:
            m = GaugeMetricFamily(name, doc, labels=["service"])
            m.add_metric([service], value)
            return m

        def by_reason(
            name: str, doc: str, values: List[Tuple[str, int]]
        ) -> CounterMetricFamily:
            m = CounterMetricFamily(name, doc, labels=["service", "reason"])
            for reason, value in values:
                m.add_metric([service, reason], value)
            return m

        # Help texts are the Rust library's, word for word.
        yield counter(
            f"{p}_events_buffered",
            "Events accepted by record (buffered for delivery).",
            s.recorded,
        )
        yield by_reason(
            f"{p}_events_dropped",
            "Events lost, by reason: turned away by record (queue_full, block_timeout, bad "
            "input...) or given up after being accepted (oldest, store_full, shutdown, "
            "damaged, failed).",
            _dropped(s),
        )
        yield counter(
            f"{p}_events_written", "Events the receiver acknowledged (any 2xx).", s.delivered
        )
        yield by_reason(
            f"{p}_events_dead_lettered",
            "Events the receiver refused for good, by reason (rejected: a 4xx for the event "
            "alone; too_large: a 413 for the event alone; store: a store row whose claimers "
            "kept dying).",
            _dead_lettered(s),
        )
        yield counter(
            f"{p}_batches_failed",
            "Batches whose retry budget ran out (kept in the backing store, or failed).",
            s.batches_failed,
        )
        yield counter(
            f"{p}_retries", "Sink calls answered with a retryable failure.", s.retries
        )
        yield gauge(
            f"{p}_buffer_size",
            "Events buffered in memory: queued or being sent.",
            s.queued + s.in_flight,
        )
        yield counter(
            "auditbuf_events_recovered",
            "Events found in the backing store when the pipeline opened it.",
            s.recovered,
        )
        yield counter(
            "auditbuf_events_redelivered",
            "Events sent again because the store failed to record their delivery.",
            s.redelivered,
        )
        yield counter(
            "auditbuf_sends",
            "Batches handed to the sink, retries and split halves included.",
            s.sends,
        )
        yield counter(
            "auditbuf_endpoint_refusals",
            "Times the receiver refused every event alone with the same answer "
            "(events kept).",
            s.endpoint_refusals,
        )
        yield gauge(
            "auditbuf_events_queued",
            "Events accepted and not yet taken by the flush thread.",
            s.queued,
        )
        yield gauge(
            "auditbuf_events_in_flight",
            "Events batched, being sent or waiting for a retry.",
            s.in_flight,
        )
        yield gauge(
            "audit_backing_store_events", "Events waiting in the backing store.", s.stored
        )
