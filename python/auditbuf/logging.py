"""A ``logging.Handler`` that turns log records into audit events.

    import logging
    from auditbuf.logging import AuditHandler

    audit_log = logging.getLogger("audit")
    audit_log.addHandler(AuditHandler(pipeline))
    audit_log.info("user logged in", extra={"audit": {"user": "ada"}})

Each record becomes one event (a dict recorded with ``Pipeline.record``)::

    {"event_type": "log.info", "event_timestamp": <record.created, RFC 3339 UTC>,
     "logger": "audit", "level": "INFO", "message": "user logged in",
     "module": ..., "function": ..., "line": ..., "thread": ..., "process": ...,
     "exception": <formatted traceback, when exc_info is set>,
     ...the members of extra={"audit": {...}}, which win over the fields above}

The handler never blocks the caller beyond the pipeline's own overflow policy. Events the
pipeline turns away for load or shutdown (``Full``, ``Timeout``, ``Closed``) are counted in
``pipeline.stats().rejected`` and not reported again; any other failure goes to
``Handler.handleError`` like every logging handler's.
"""

from __future__ import annotations

import datetime as _dt
import logging as _logging
from typing import Any, Dict, Optional

from . import Closed, Full, Pipeline, Timeout

_UTC = _dt.timezone.utc


class AuditHandler(_logging.Handler):
    """Records each log record as an audit event through ``pipeline``.

    ``event_type`` fixes the event type (default: ``"log." + levelname.lower()``);
    ``extra_key`` names the ``extra=`` member whose dict is merged into the event
    (default ``"audit"``); ``close_pipeline`` makes ``close()`` close the pipeline too.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        level: int = _logging.NOTSET,
        *,
        event_type: Optional[str] = None,
        extra_key: str = "audit",
        close_pipeline: bool = False,
    ) -> None:
        super().__init__(level)
        self.pipeline = pipeline
        self.event_type = event_type
        self.extra_key = extra_key
        self.close_pipeline = close_pipeline

    def to_event(self, record: _logging.LogRecord) -> Dict[str, Any]:
        """The event for ``record``; override to shape events differently."""
        event: Dict[str, Any] = {
            "event_type": self.event_type or "log." + record.levelname.lower(),
            "event_timestamp": _dt.datetime.fromtimestamp(record.created, _UTC),
            "logger": record.name,
            "level": record.levelname,
            "message": record.getMessage(),
            "module": record.module,
            "function": record.funcName,
            "line": record.lineno,
            "thread": record.threadName,
            "process": record.process,
        }
        if record.exc_info:
            event["exception"] = _logging.Formatter().formatException(record.exc_info)
        extra = record.__dict__.get(self.extra_key)
        if isinstance(extra, dict):
            event.update(extra)
        return event

    def handle(self, record: _logging.LogRecord) -> Any:
        """As ``logging.Handler.handle``, without holding the handler's lock around
        ``emit``: the pipeline takes concurrent records itself, and a caller waiting for
        room under ``overflow="block"`` while holding that lock would deadlock with a sink
        that logs through this handler (the flush thread waiting for the lock, the caller
        for the flush thread). A sink's own records are refused at once when the queue is
        full (``Full``, counted), never waited for."""
        rv = self.filter(record)
        if isinstance(rv, _logging.LogRecord):  # Python 3.12+: a filter may return one
            record = rv
        if rv:
            self.emit(record)
        return rv

    def emit(self, record: _logging.LogRecord) -> None:
        try:
            self.pipeline.record(self.to_event(record))
        except (Full, Timeout, Closed):
            pass  # counted in pipeline.stats().rejected
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Does not wait for delivery: that is ``pipeline.flush()``'s job."""

    def close(self) -> None:
        try:
            if self.close_pipeline:
                self.pipeline.close()
        finally:
            super().close()
