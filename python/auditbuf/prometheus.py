"""Pipeline counters as Prometheus metrics, for ``prometheus_client`` (install with
``pip install 'auditbuf[prometheus]'``).

    from prometheus_client import REGISTRY
    from auditbuf.prometheus import AuditbufCollector

    REGISTRY.register(AuditbufCollector(pipeline))

Every value is read from ``pipeline.stats()`` at scrape time (one consistent snapshot per
scrape), labelled with the pipeline's ``service``. Names follow kubernaut's ``pkg/audit``:

===================================== ======= ==============================================
``audit_events_buffered_total``       counter events accepted by ``record`` (``recorded``)
``audit_events_written_total``        counter events the receiver acknowledged (``delivered``)
``audit_events_dropped_total{reason}`` counter events lost or turned away, by reason: each
                                              ``rejected`` field (``queue_full``,
                                              ``block_timeout``, ``invalid_json``, …), and
                                              ``shutdown``, ``store_overflow``, ``damaged``
                                              (``dropped.*``), ``failed`` (retries ran out)
``audit_events_dead_lettered_total``  counter events the receiver refused for good
``audit_batches_failed_total``        counter sends answered with a retryable failure
                                              (``retries``)
``audit_batches_sent_total``          counter sends, retries and split halves included
``audit_events_redelivered_total``    counter events the receiver saw twice
``audit_endpoint_refusals_total``     counter times the endpoint refused every event
``audit_events_recovered_total``      counter events found in the backing store at open
``audit_buffer_size``                 gauge   events queued or in flight
``audit_events_stored``               gauge   events in the backing store
===================================== ======= ==============================================
"""

from __future__ import annotations

from typing import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import Pipeline

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
    "store_full",
    "store_error",
)


class AuditbufCollector(Collector):
    """Collects a pipeline's counters on each scrape. ``prefix`` replaces ``audit``."""

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
            m = CounterMetricFamily(f"{p}_{name}", doc, labels=["service"])
            m.add_metric([service], value)
            return m

        def gauge(name: str, doc: str, value: int) -> GaugeMetricFamily:
            m = GaugeMetricFamily(f"{p}_{name}", doc, labels=["service"])
            m.add_metric([service], value)
            return m

        yield counter("events_buffered", "Events accepted by record.", s.recorded)
        yield counter("events_written", "Events the receiver acknowledged.", s.delivered)
        dropped = CounterMetricFamily(
            f"{p}_events_dropped",
            "Events lost or turned away, by reason.",
            labels=["service", "reason"],
        )
        for reason in _REJECTED:
            dropped.add_metric([service, reason], getattr(s.rejected, reason))
        dropped.add_metric([service, "shutdown"], s.dropped.shutdown)
        dropped.add_metric([service, "store_overflow"], s.dropped.store_full)
        dropped.add_metric([service, "damaged"], s.dropped.damaged)
        dropped.add_metric([service, "failed"], s.failed)
        yield dropped
        yield counter(
            "events_dead_lettered", "Events the receiver refused for good.", s.dead_lettered
        )
        yield counter(
            "batches_failed", "Sends answered with a retryable failure.", s.retries
        )
        yield counter("batches_sent", "Batches handed to the sink.", s.sends)
        yield counter(
            "events_redelivered", "Events the receiver saw twice.", s.redelivered
        )
        yield counter(
            "endpoint_refusals",
            "Times the endpoint refused every event it was shown.",
            s.endpoint_refusals,
        )
        yield counter(
            "events_recovered", "Events found in the backing store.", s.recovered
        )
        yield gauge("buffer_size", "Events queued or in flight.", s.queued + s.in_flight)
        yield gauge("events_stored", "Events in the backing store.", s.stored)
