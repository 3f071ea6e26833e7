"""auditbuf.logging.AuditHandler: log records become events."""

from __future__ import annotations

import json
import logging

import pytest

import auditbuf
from auditbuf.logging import AuditHandler
from conftest import Collect, assert_accounted


@pytest.fixture
def logger() -> logging.Logger:
    log = logging.getLogger("audit.test")
    log.handlers.clear()
    log.setLevel(logging.DEBUG)
    log.propagate = False
    return log


def test_log_records_become_events(collect: Collect, logger: logging.Logger) -> None:
    p = auditbuf.Pipeline(sink=collect)
    logger.addHandler(AuditHandler(p))
    logger.info("user %s logged in", "ada", extra={"audit": {"user": "ada", "n": 1}})
    try:
        1 / 0
    except ZeroDivisionError:
        logger.exception("boom")
    assert_accounted(p.close().stats, delivered=2)
    first, second = collect.json()
    assert first["event_type"] == "log.info"
    assert first["message"] == "user ada logged in"
    assert (first["user"], first["n"], first["logger"], first["level"]) == ("ada", 1, "audit.test", "INFO")
    assert first["function"] == "test_log_records_become_events"
    assert first["event_timestamp"].endswith("Z") and len(first["event_timestamp"]) in (24, 27)
    assert second["event_type"] == "log.error"
    assert "ZeroDivisionError" in second["exception"]
    assert collect.events[0].startswith(b'{"version":"1.0","event_type":"log.info",')


def test_fixed_event_type_and_level(collect: Collect, logger: logging.Logger) -> None:
    p = auditbuf.Pipeline(sink=collect)
    logger.addHandler(AuditHandler(p, logging.WARNING, event_type="app.audit"))
    logger.info("ignored")
    logger.warning("kept")
    p.close()
    assert [e["event_type"] for e in collect.json()] == ["app.audit"]


def test_overload_and_closed_are_counted_not_reported(
    collect: Collect, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    p = auditbuf.Pipeline(sink=collect)
    handler = AuditHandler(p, close_pipeline=True)
    logger.addHandler(handler)
    handler.close()  # closes the pipeline too
    logger.info("after close")
    assert p.stats().rejected.closed == 1
    assert capsys.readouterr().err == ""


def test_unencodable_extra_goes_to_handle_error(
    collect: Collect, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    p = auditbuf.Pipeline(sink=collect)
    logger.addHandler(AuditHandler(p))
    logger.info("x", extra={"audit": {"bad": {1, 2}}})
    assert "SerializeError" in capsys.readouterr().err
    assert p.close().stats.rejected.serialize == 1
    assert json.dumps(collect.json()) == "[]"


def test_a_sink_that_logs_through_the_handler_never_deadlocks_under_block(
    logger: logging.Logger,
) -> None:
    # The sink logs each batch through the same handler the program logs through, the
    # queue is small and the program waits for room ("block"): a caller waiting inside the
    # handler's lock would keep the sink from logging, and the sink from making room.
    got = []

    def sink(batch: list) -> None:
        got.extend(batch)
        logger.info("sent %d events", len(batch))

    p = auditbuf.Pipeline(sink=sink, overflow="block", queue_capacity=8, flush_interval=0.001)
    logger.addHandler(AuditHandler(p))
    for i in range(2000):
        logger.info("line %d", i)
    stats = p.close(timeout=30).stats
    lines = [json.loads(e)["message"] for e in got]
    # Every line of the program's is delivered, in order; the sink's own lines are taken
    # when there is room and refused at once (Full) when not.
    assert [m for m in lines if m.startswith("line ")] == [f"line {i}" for i in range(2000)]
    assert stats.rejected.block_timeout == 0, stats
    assert stats.recorded == len(got), stats
    assert_accounted(stats, delivered=len(got))
