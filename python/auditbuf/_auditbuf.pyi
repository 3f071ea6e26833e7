"""The native module of auditbuf (Rust, pyo3). Import ``auditbuf`` instead."""

import datetime
import os
from typing import Any, Callable, ClassVar, Dict, List, Literal, Mapping, Optional, Union

from .cadf import CadfEvent

__version__: str

Seconds = Union[float, int, datetime.timedelta]
JsonText = Union[bytes, bytearray, memoryview, str]
Timestamp = Union[str, datetime.datetime]
SinkResult = Optional[Union[bool, int]]

class Pipeline:
    """Buffers audit events and ships them from one flush thread, without blocking the
    caller and without losing what it accepted.

    Give the collector's ``url`` (a DataStorage base URL — ``datastorage`` is ``None`` or
    ``True`` —, or with ``datastorage=False`` any HTTP endpoint taking a JSON array — or
    NDJSON with ``format="ndjson"``), or a ``sink``:
    a callable receiving each batch as a ``list[bytes]`` (one JSON object each) on the flush
    thread, returning ``None``/``True`` (delivered), ``False`` (retry) or an
    ``auditbuf.Outcome``; an exception it raises is a retry, counted in ``stats().retries``
    and shown by ``last_error()`` — it never stops the flush thread. The sink may call back
    into its own pipeline, where nothing waits for the flush thread it runs on: a record is
    refused with ``Full`` rather than wait for a slot (even under ``overflow="block"``), and
    ``flush``/``close`` return at once, not completed (the close takes effect when the sink
    returns). A sink that refers back to the pipeline (a bound method of the object holding
    it) is no leak: when the garbage collector finds the two unreachable, it closes the
    pipeline (delivering what it holds, by its ``drop_timeout_ms``) and lets go of the sink.

    The other arguments are the fields of the pipeline document (README, "Configuration"),
    times in seconds: ``batch_size`` is ``batch_max_events``, ``flush_interval`` is
    ``flush_interval_ms``, ``backing_store`` is the document's ``store``
    (``{"type": "file", "params": {"path": ...}}``); ``config`` takes any further field
    (``retry``, ``dead_letter_capacity``, ``drop_timeout_ms``, ``max_lanes`` — 1 by default,
    which keeps each caller's order; 2, 4 or 8 give each OS thread a lane of its own, keeping
    order per thread only; any other value raises ``ConfigError`` naming it —, even
    ``sink``: a sink type of
    the document — ``"datastorage"``, ``"http"``, ``"rabbitmq"`` (``{"type": "rabbitmq",
    "url": "amqp://user:password@host:5672/%2f", "queue": ...}``, an event counts as
    delivered once the broker confirmed it) or ``"null"`` — instead of ``url``/``sink``). With
    ``overflow="block"`` and no ``block_timeout`` a full queue waits as long as it takes.
    ``exit_timeout`` is the deadline of the close done at interpreter exit, in seconds
    (``None``: 1).

    Invalid settings raise ``ConfigError`` naming the field. The pipeline closes on
    ``close()``, at the end of a ``with`` block, when it is garbage-collected (up to
    ``drop_timeout_ms``, 1 s) or at interpreter exit (``exit_timeout``).
    """

    def __init__(
        self,
        url: Optional[str] = None,
        *,
        sink: Optional[Callable[[List[bytes]], SinkResult]] = None,
        datastorage: Optional[bool] = None,
        service: Optional[str] = None,
        queue_capacity: Optional[int] = None,
        batch_size: Optional[int] = None,
        flush_interval: Optional[Seconds] = None,
        overflow: Optional[Literal["drop_newest", "drop_oldest", "block", "spill"]] = None,
        block_timeout: Optional[Seconds] = None,
        max_event_bytes: Optional[int] = None,
        durability: Optional[Literal["buffered", "wal"]] = None,
        backing_store: Optional[Union[Mapping[str, Any], str]] = None,
        headers: Optional[Mapping[str, str]] = None,
        token_file: Optional[Union[str, "os.PathLike[str]"]] = None,
        bearer_token: Optional[str] = None,
        timeout: Optional[Seconds] = None,
        connect_timeout: Optional[Seconds] = None,
        ca_file: Optional[Union[str, "os.PathLike[str]"]] = None,
        format: Optional[Literal["json_array", "ndjson"]] = None,
        exit_timeout: Optional[float] = None,
        config: Optional[Mapping[str, Any]] = None,
    ) -> None: ...
    @classmethod
    def from_env(
        cls,
        prefix: str = "AUDIT",
        *,
        url: Optional[str] = None,
        sink: Optional[Callable[[List[bytes]], SinkResult]] = None,
        datastorage: Optional[bool] = None,
        headers: Optional[Mapping[str, str]] = None,
        token_file: Optional[Union[str, "os.PathLike[str]"]] = None,
        bearer_token: Optional[str] = None,
        timeout: Optional[Seconds] = None,
        connect_timeout: Optional[Seconds] = None,
        ca_file: Optional[Union[str, "os.PathLike[str]"]] = None,
        format: Optional[Literal["json_array", "ndjson"]] = None,
        exit_timeout: Optional[float] = None,
    ) -> "Pipeline":
        """A pipeline configured from ``{prefix}_CONFIG`` (the settings as a JSON object)
        and ``{prefix}_BACKING_STORE`` (``{"type": ..., "params": {...}}``), exactly as the
        Rust ``PipelineConfig::from_env`` reads them; unset variables keep the defaults. The
        sink comes from ``url`` or ``sink``, or else from ``{prefix}_RABBITMQ_URL`` and
        ``{prefix}_RABBITMQ_QUEUE`` (or audittools' ``{prefix}_RABBITMQ_HOSTNAME``, ``_PORT``,
        ``_USERNAME``, ``_PASSWORD``, ``_QUEUE_NAME``): a RabbitMQ sink. Both is a
        ``ConfigError`` (field ``"sink"``), neither one too (field ``"url"``)."""
    def record(self, event: Union[Dict[str, Any], JsonText]) -> None:
        """Records one event: a dict (encoded in Rust from str, int, float, bool, None,
        list, tuple, dict with str keys and datetime — RFC 3339 UTC, a naive one taken as
        UTC), or JSON text of one object. ``version`` and ``event_timestamp`` are added when
        absent.

        Raises ``Full`` (queue full, overflow "drop_newest"), ``Timeout`` (overflow
        "block"), ``Closed``/``Forked``, ``InvalidEvent`` (bad JSON, too large, …),
        ``SerializeError`` (also a ``TypeError``: a value with no JSON form, its path in the
        message, e.g. ``items[3]``; or an event of another type — a list, an int, ``None`` —
        as ``record() takes a dict, or JSON text as bytes, bytearray, memoryview or str,
        not int``), ``StoreFull``/``StoreError`` (overflow "spill", durability "wal"). Each
        is counted in ``stats().rejected`` (a ``SerializeError`` in ``.serialize``), once; an
        exception raised by Python code the encoder calls (a ``tzinfo``, a released
        ``memoryview``) is raised as it is and counted in ``.serialize`` too. In durability
        "wal" a failed fsync issues ``NotDurableWarning``: the event was accepted. A wait
        (overflow "block", the wal fsync) releases the GIL and ends with
        ``KeyboardInterrupt`` on Ctrl-C (counted as a block timeout)."""
    def record_cadf(self, event: CadfEvent) -> None:
        """Records a CADF event (for the RabbitMQ sink and Hermes): a dict with CADF's wire
        names (``auditbuf.cadf.CadfEvent``), encoded in Rust into a queue slot, keys in
        the order of audittools' Go type. Left out, ``id`` is a new random UUID (version 4),
        ``eventTime`` the time of the call, ``typeURI`` the CADF event schema and
        ``eventType`` ``"activity"``. An attachment's ``content`` is text (a ``str``, sent as
        a JSON string), JSON text (``bytes``, sent as written) or a dict or list (encoded as
        JSON).

        Raises ``InvalidEvent`` naming the field in ``.field`` (``outcome``,
        ``initiator.id``, ``initiator.addresses.url``) and its place in the message
        (``initiator.addresses[1].url``): name "missing_field" for ``action``,
        ``outcome``, a resource, its ``typeURI`` or ``id``, an address's ``url``, an
        attachment's ``typeURI`` or ``content``; "invalid_field" for an unknown key, a value
        of the wrong type, a str that is not UTF-8, U+0000, an ``outcome`` other than
        ``success|failure|pending|unknown``, an ``eventType`` other than
        ``activity|monitor|control``, an ``eventTime`` that is not RFC 3339, an ``id`` over
        255 bytes; "invalid_json" for JSON content that is not JSON. ``SerializeError`` for
        content with no JSON form, and for an event that is not a dict
        (``record_cadf() takes a dict, not list``; also a ``TypeError``); then the errors of
        ``record``. Each is counted in ``stats().rejected``, once. ``eventTime`` may be a
        ``datetime`` (written in UTC, as ``record`` writes one).

        Like ``record``, a wait (overflow "block", the wal fsync, a spill) releases the GIL
        and ends with ``KeyboardInterrupt`` on Ctrl-C (counted as a block timeout)."""
    def record_event(
        self,
        *,
        event_type: str,
        event_category: str,
        event_action: str,
        event_outcome: str,
        correlation_id: str,
        event_data: Optional[Union[Dict[str, Any], str, bytes]] = None,
        actor_type: Optional[str] = None,
        actor_id: Optional[str] = None,
        actor_ip: Optional[str] = None,
        resource_type: Optional[str] = None,
        resource_id: Optional[str] = None,
        parent_event_id: Optional[str] = None,
        parent_event_date: Optional[Timestamp] = None,
        namespace: Optional[str] = None,
        cluster_id: Optional[str] = None,
        severity: Optional[str] = None,
        duration_ms: Optional[int] = None,
        error_code: Optional[str] = None,
        error_message: Optional[str] = None,
        retention_days: Optional[int] = None,
        is_sensitive: Optional[bool] = None,
        event_timestamp: Optional[Timestamp] = None,
        version: Optional[str] = None,
    ) -> None:
        """Records an event in the DataStorage shape (``AuditEventRequest``): the five
        required fields must not be empty (``InvalidEvent``, name "missing_field");
        ``event_data`` (a dict, or JSON text of an object) always carries an ``event_type``
        equal to the event's own — added when missing, refused when different
        (name "invalid_field"). ``event_timestamp`` defaults to now; ``None`` is the same
        as leaving an optional field out.

        An argument of a type its field does not take raises ``SerializeError`` (also a
        ``TypeError``) with ``.field`` naming it and a message such as ``event_type: must
        be a str, not int``, ``duration_ms: must be an int, not float``, ``is_sensitive:
        must be a bool, not int``, ``event_timestamp: must be a str or a datetime, not
        int`` or ``event_data: must be a dict, or JSON text of an object as str or bytes,
        not list``. An int out of its field's range is an ``InvalidEvent`` (name
        "invalid_field", ``field duration_ms: must be an int from 0 to
        9223372036854775807``; ``retention_days`` up to 4294967295). Then the errors of
        ``record``. Each refusal is counted in ``stats().rejected``, once. A missing or
        unknown keyword is Python's own ``TypeError`` (the call itself is wrong), not
        counted."""
    def flush(self, timeout: Optional[float] = 5.0) -> "Report":
        """Waits until everything recorded so far is settled (delivered, dead-lettered,
        stored, failed), or ``timeout`` seconds pass (``None``: no deadline); the report
        says which (``completed``). The GIL is released; Ctrl-C raises
        ``KeyboardInterrupt`` at once (the flush goes on in the background)."""
    def close(self, timeout: Optional[float] = 5.0) -> "Report":
        """Stops taking events, sends what it can within ``timeout`` seconds, keeps the
        rest in the backing store (or counts it as ``dropped.shutdown``). Returns by the
        deadline even if the sink hangs; from then on the sink is never called again.
        Closing again waits again. The GIL is released, so a Python sink can finish."""
    def stats(self) -> "Stats":
        """A consistent snapshot of the counters."""
    def metrics_text(self) -> str:
        """The metrics in the Prometheus text format (version 0.0.4), as the Rust library
        gives them, with the write-duration histogram and the backing store's gauges."""
    def dead_letters(self) -> List["DeadLetter"]:
        """The dead letters kept in memory (the newest ``dead_letter_capacity``)."""
    def last_error(self) -> Optional[str]:
        """The last send, store or rejection error, if any."""
    @property
    def service(self) -> str:
        """The configured service name."""
    def __enter__(self) -> "Pipeline": ...
    def __exit__(self, *_exc: object) -> bool:
        """Closes the pipeline (``close(timeout=5.0)``)."""

class Rejected:
    """Calls turned away, by reason; none of these events entered the pipeline."""

    queue_full: int
    block_timeout: int
    closed: int
    invalid_utf8: int
    invalid_json: int
    not_an_object: int
    too_large: int
    missing_field: int
    invalid_field: int
    serialize: int
    store_full: int
    store_error: int
    def total(self) -> int:
        """All rejected calls, whatever the reason."""
    def as_dict(self) -> Dict[str, int]: ...

class Dropped:
    """Accepted events given up, by reason."""

    shutdown: int
    store_full: int
    damaged: int
    oldest: int
    """Queued events evicted for newer ones (overflow "drop_oldest")."""
    def total(self) -> int:
        """All dropped events, whatever the reason."""
    def as_dict(self) -> Dict[str, int]: ...

class Stats:
    """A consistent snapshot of the counters (frozen): in every one,
    ``recorded + recovered == delivered + dead_lettered + failed + dropped.total() +
    in_flight + queued + stored``."""

    recorded: int
    recovered: int
    delivered: int
    dead_lettered: int
    failed: int
    dropped: Dropped
    in_flight: int
    queued: int
    stored: int
    rejected: Rejected
    sends: int
    retries: int
    redelivered: int
    endpoint_refusals: int
    batches_failed: int
    """Batches whose retry budget ran out (their events went to the store, or failed)."""
    gap_markers: int
    """Of ``recorded``: gap markers the pipeline added (``gap_markers=True``)."""
    dead_lettered_too_large: int
    """Of ``dead_lettered``: events refused with 413 even alone."""
    dead_lettered_by_store: int
    """Of ``dead_lettered``: events the store dead-lettered on its own."""
    def is_consistent(self) -> bool:
        """Whether the accounting invariant holds (it always should)."""
    def settled(self) -> int:
        """Events that reached a terminal counter."""
    def as_dict(self) -> Dict[str, Any]: ...

class Report:
    """What ``flush`` or ``close`` achieved by its deadline."""

    stats: Stats
    left: int
    """Events still queued or in flight."""
    completed: bool
    """The work finished before the deadline."""
    def as_dict(self) -> Dict[str, Any]: ...

class DeadLetter:
    """An event the receiver refused for good."""

    event: bytes
    reason: str
    at: float
    """When, in seconds since the epoch."""
    def as_dict(self) -> Dict[str, Any]: ...

class AuditbufError(Exception):
    """Base of every auditbuf error. ``code`` is the status code shared with the C ABI and
    Go (``auditbuf::Error::code()``), ``name`` its name, ``field`` the field at fault or
    ``None``."""

    code: int
    name: str
    field: Optional[str]

class Full(AuditbufError):
    """Queue full, overflow "drop_newest" (code 10). Raised without waiting for a slot."""

class Timeout(AuditbufError, TimeoutError):
    """No slot within ``block_timeout``, overflow "block" (code 11)."""

class Closed(AuditbufError):
    """The pipeline is closed (code 12)."""

class Forked(Closed):
    """A ``fork()`` child using its parent's pipeline (code 13): make a new one."""

class InvalidEvent(AuditbufError, ValueError):
    """The event itself was refused (codes 14–19: ``invalid_utf8``, ``invalid_json``,
    ``not_an_object``, ``too_large``, ``missing_field``, ``invalid_field``); ``field``
    names the field for the last two, and for ``invalid_json`` in a field's own JSON text
    (``event_data``, a CADF attachment's ``content``; the offset in the message is then
    within that text), and is ``None`` otherwise."""

class SerializeError(InvalidEvent, TypeError):
    """A value with no JSON form, the message naming its path; or an event, or an argument
    of ``record_event``, of a type the method does not take, the message saying which type
    was given and which are taken (``.field`` names a ``record_event`` argument). Code 20,
    counted in ``stats().rejected.serialize``."""

class StoreFull(AuditbufError):
    """The backing store is at its limit (code 21)."""

class StoreError(AuditbufError):
    """The backing store failed (code 22)."""

class ConfigError(AuditbufError, ValueError):
    """Invalid configuration; ``field`` names the field (code 30)."""

class IoError(AuditbufError, OSError):
    """A file the configuration names could not be read (code 31)."""

class SpawnError(AuditbufError, RuntimeError):
    """The flush thread could not be started (code 32)."""

class NotDurableWarning(RuntimeWarning):
    """Durability "wal": accepted, but the fsync failed (code 1)."""

    code: ClassVar[int]
    name: ClassVar[str]

def _close_all_at_exit() -> None: ...
