"""Ship audit events to a collector without blocking the program and without losing what
it promised to keep.

``Pipeline.record(event)`` encodes the event in Rust straight into a pooled buffer and
queues it (``record_event`` takes the DataStorage fields, ``record_cadf`` a CADF event, as
the ``rabbitmq`` sink type publishes them); one flush thread batches, sends, retries,
splits and bisects, and keeps what it cannot send in a backing store. Every event is
accounted for in ``Pipeline.stats()``.

    import auditbuf

    with auditbuf.Pipeline("http://datastorage:8080", service="gateway") as audit:
        audit.record({"event_type": "user.login", "user": "ada"})

See docs/python.md for the exceptions, fork and exit behaviour.
"""

from __future__ import annotations

import atexit
import enum

from ._auditbuf import (
    AuditbufError,
    Closed,
    ConfigError,
    DeadLetter,
    Dropped,
    Forked,
    Full,
    InvalidEvent,
    IoError,
    NotDurableWarning,
    Pipeline,
    Rejected,
    Report,
    SerializeError,
    SpawnError,
    Stats,
    StoreError,
    StoreFull,
    Timeout,
    __version__,
    _close_all_at_exit,
)
from .cadf import CadfEvent


class Outcome(enum.IntEnum):
    """What a sink callable may return for a batch (``None`` and ``True`` mean DELIVERED,
    ``False`` RETRY; an exception is a RETRY too). The values are the C ABI's
    ``AUDITBUF_SINK_*``."""

    DELIVERED = 0
    """The receiver took the whole batch; it is never sent again."""
    RETRY = 1
    """A passing failure: the same batch is sent again after a backoff."""
    REJECTED = 2
    """The content was refused: the batch is bisected, the events refused alone are
    dead-lettered and the rest delivered."""
    TOO_LARGE = 3
    """The batch is too large: it is sent again in halves."""


# Pipelines still open when the interpreter exits are closed, each with its
# ``exit_timeout`` (1 s by default), all at once.
atexit.register(_close_all_at_exit)

__all__ = [
    "AuditbufError",
    "CadfEvent",
    "Closed",
    "ConfigError",
    "DeadLetter",
    "Dropped",
    "Forked",
    "Full",
    "InvalidEvent",
    "IoError",
    "NotDurableWarning",
    "Outcome",
    "Pipeline",
    "Rejected",
    "Report",
    "SerializeError",
    "SpawnError",
    "Stats",
    "StoreError",
    "StoreFull",
    "Timeout",
    "__version__",
]
