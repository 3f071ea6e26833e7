"""Every exception: its class, its built-in base, its code and name (those of
auditbuf::Error::code(), shared with the C ABI), and the counter it lands in."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, List

import pytest

import auditbuf
from conftest import Collect, assert_accounted


def codes(cls: type) -> Any:
    return (getattr(cls, "code", None), getattr(cls, "name", None))


def test_the_hierarchy_and_class_codes() -> None:
    assert issubclass(auditbuf.AuditbufError, Exception)
    expect = {
        auditbuf.Full: (10, "full", ()),
        auditbuf.Timeout: (11, "timeout", (TimeoutError,)),
        auditbuf.Closed: (12, "closed", ()),
        auditbuf.Forked: (13, "forked", (auditbuf.Closed,)),
        auditbuf.SerializeError: (20, "serialize", (auditbuf.InvalidEvent, TypeError, ValueError)),
        auditbuf.StoreFull: (21, "store_full", ()),
        auditbuf.StoreError: (22, "store", ()),
        auditbuf.ConfigError: (30, "config", (ValueError,)),
        auditbuf.IoError: (31, "io", (OSError,)),
        auditbuf.SpawnError: (32, "spawn", (RuntimeError,)),
    }
    for cls, (code, name, bases) in expect.items():
        assert issubclass(cls, auditbuf.AuditbufError), cls
        assert codes(cls) == (code, name), cls
        for base in bases:
            assert issubclass(cls, base), (cls, base)
        assert cls.__module__ == "auditbuf" and cls.__doc__
    assert issubclass(auditbuf.InvalidEvent, ValueError)
    assert issubclass(auditbuf.NotDurableWarning, RuntimeWarning)
    assert codes(auditbuf.NotDurableWarning) == (1, "not_durable")


@pytest.mark.parametrize(
    "event, name, code",
    [
        (b'{"a":"\xff"}', "invalid_utf8", 14),
        ('{"a":"\ud800"}', "invalid_utf8", 14),
        (b'{"a":', "invalid_json", 15),
        (b"[1, 2]", "not_an_object", 16),
        ({"a": "x" * 100}, "too_large", 17),
    ],
)
def test_invalid_events(collect: Collect, event: Any, name: str, code: int) -> None:
    p = auditbuf.Pipeline(sink=collect, max_event_bytes=64)
    with pytest.raises(auditbuf.InvalidEvent) as e:
        p.record(event)
    # No field is at fault in these: `.field` is there, and None.
    assert (e.value.code, e.value.name, e.value.field) == (code, name, None)
    stats = p.close().stats
    assert getattr(stats.rejected, name) == 1 and stats.recorded == 0


def test_a_str_with_a_lone_surrogate_names_its_byte_offset(collect: Collect) -> None:
    p = auditbuf.Pipeline(sink=collect)
    with pytest.raises(auditbuf.InvalidEvent, match="at byte 8"):
        p.record('{"a":"é\udc80"}')


def test_full_and_closed(collect: Collect) -> None:
    release = threading.Event()
    p = auditbuf.Pipeline(sink=lambda b: release.wait(10), queue_capacity=1, flush_interval=0.001)
    p.record({"event_type": "a"})
    time.sleep(0.05)
    with pytest.raises(auditbuf.Full) as e:
        p.record({"event_type": "b"})
    assert (e.value.code, e.value.name) == (10, "full")
    release.set()
    p.close()
    with pytest.raises(auditbuf.Closed) as c:
        p.record({"event_type": "c"})
    assert (c.value.code, c.value.name) == (12, "closed")
    stats = p.stats()
    assert (stats.rejected.queue_full, stats.rejected.closed) == (1, 1)
    assert_accounted(stats, delivered=1)


def test_store_full_on_spill() -> None:
    release = threading.Event()
    p = auditbuf.Pipeline(
        sink=lambda b: release.wait(10),
        queue_capacity=1,
        overflow="spill",
        backing_store={"type": "memory", "params": {"max_events": 1}},
        flush_interval=0.001,
    )
    p.record({"event_type": "a"})
    time.sleep(0.05)
    with pytest.raises(auditbuf.StoreFull) as e:
        for i in range(5):
            p.record({"event_type": "b", "i": i})
    assert (e.value.code, e.value.name) == (21, "store_full")
    release.set()
    stats = p.close(timeout=10).stats
    assert stats.rejected.store_full == 1
    assert_accounted(stats)


def test_store_error_when_the_directory_is_locked(tmp_path: Path, collect: Collect) -> None:
    store = {"type": "file", "params": {"path": str(tmp_path)}}
    first = auditbuf.Pipeline(sink=collect, backing_store=store)
    with pytest.raises(auditbuf.StoreError) as e:
        auditbuf.Pipeline(sink=collect, backing_store=store)
    assert (e.value.code, e.value.name) == (22, "store")
    assert "already open in this process" in str(e.value)
    # Closed (though not yet collected), it lets the next pipeline have the store.
    first.close()
    second = auditbuf.Pipeline(sink=collect, backing_store=store)
    second.record({"event_type": "x"})
    assert_accounted(second.close().stats, delivered=1)
    del first


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(queue_capacity=0), "queue_capacity"),
        (dict(overflow="sideways"), "overflow"),
        (dict(overflow="spill"), "overflow"),
        (dict(durability="wal"), "durability"),
        (dict(config={"queue_capacty": 1}), "queue_capacty"),
        (dict(config={"max_lanes": 3}), "max_lanes"),
        (dict(config={"retry": {"tries": 1}}), "retry.tries"),
        (dict(queue_capacity=5, config={"queue_capacity": 6}), "queue_capacity"),
        (dict(backing_store={"type": "tape"}), "store.type"),
        (dict(backing_store={"type": "file", "params": {"pth": "/x"}}), "store.params.pth"),
        # A str is a JSON document: a key given twice is refused, not the last one kept.
        (dict(config='{"queue_capacity": 5, "queue_capacity": 7}'), "queue_capacity"),
        (dict(config='{"retry": {"max_attempts": 1, "max_attempts": 2}}'), "retry.max_attempts"),
        (dict(backing_store='{"type": "file", "type": "memory"}'), "store.type"),
        (dict(flush_interval=-1), "flush_interval"),
        (dict(headers={"a": "b"}), "headers"),
        (dict(queue_capacity=-1), "queue_capacity"),
        (dict(batch_size=2**70), "batch_size"),
        (dict(max_event_bytes=-5), "max_event_bytes"),
        (dict(service="\ud800"), "service"),
        (dict(service="a\x00b"), "service"),
    ],
)
def test_config_errors_name_the_field(collect: Collect, kwargs: Any, field: str) -> None:
    with pytest.raises(auditbuf.ConfigError) as e:
        auditbuf.Pipeline(sink=collect, **kwargs)
    assert isinstance(e.value, ValueError)
    assert (e.value.code, e.value.name, e.value.field) == (30, "config", field), str(e.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(queue_capacity=10.5), "queue_capacity: expected an int, not float"),
        (dict(queue_capacity="10"), "queue_capacity: expected an int, not str"),
        (dict(queue_capacity=True), "queue_capacity: expected an int, not bool"),
        (dict(overflow=1), "overflow: expected a str, not int"),
        (dict(service=5), "service: expected a str, not int"),
        (dict(datastorage=1), "datastorage: expected a bool, not int"),
        (dict(exit_timeout="1"), "exit_timeout: expected seconds (int or float), not str"),
        (dict(token_file=5), "token_file: expected a str or an os.PathLike, not int"),
    ],
)
def test_arguments_of_the_wrong_type_are_named(
    collect: Collect, kwargs: Any, message: str
) -> None:
    with pytest.raises(TypeError) as e:
        auditbuf.Pipeline(sink=collect, **kwargs)
    assert str(e.value) == message


def test_sink_or_url_is_required_and_exclusive(collect: Collect) -> None:
    with pytest.raises(auditbuf.ConfigError) as e:
        auditbuf.Pipeline()
    assert e.value.field == "url"
    with pytest.raises(auditbuf.ConfigError) as e:
        auditbuf.Pipeline("http://127.0.0.1:9", sink=collect)
    assert e.value.field == "sink"
    with pytest.raises(auditbuf.ConfigError) as e:
        auditbuf.Pipeline("http://127.0.0.1:9", format="ndjson")
    assert e.value.field == "sink.format"
    with pytest.raises(TypeError, match="callable"):
        auditbuf.Pipeline(sink="not callable")  # type: ignore[arg-type]


def test_io_error_for_a_missing_token_file(tmp_path: Path) -> None:
    with pytest.raises(auditbuf.IoError) as e:
        auditbuf.Pipeline("http://127.0.0.1:9", token_file=tmp_path / "missing")
    assert isinstance(e.value, OSError)
    assert (e.value.code, e.value.name) == (31, "io")
    assert "missing" in str(e.value)


def test_a_closed_pipeline_refuses_with_closed_before_looking_at_the_event(
    collect: Collect,
) -> None:
    p = auditbuf.Pipeline(sink=collect)
    p.close()
    for call in (
        lambda: p.record(5),  # type: ignore[arg-type]
        lambda: p.record(b"{not json"),
        lambda: p.record_cadf({}),
        lambda: p.record_event(
            event_type=7,  # type: ignore[arg-type]
            event_category="c",
            event_action="a",
            event_outcome="success",
            correlation_id="r",
        ),
    ):
        with pytest.raises(auditbuf.Closed):
            call()
    stats = p.stats()
    assert (stats.rejected.closed, stats.rejected.total()) == (4, 4)
    assert_accounted(stats, delivered=0)


def test_timeouts_beyond_any_duration_mean_no_deadline(collect: Collect) -> None:
    p = auditbuf.Pipeline(sink=collect, exit_timeout=1e300)
    p.record({"event_type": "a"})
    assert p.flush(1e300).completed
    assert p.flush(float(2**64)).completed
    assert p.close(1e300).completed
    assert_accounted(p.stats(), delivered=1)


def test_exceptions_made_by_the_caller_have_field_too() -> None:
    for cls in (auditbuf.InvalidEvent, auditbuf.ConfigError, auditbuf.AuditbufError):
        assert cls("x").field is None
