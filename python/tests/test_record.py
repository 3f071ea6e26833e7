"""Every input type of record() and record_event(), the dict encoder, and the shared test
vectors (the same bytes as the Rust pipeline)."""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
from collections import OrderedDict
from typing import Any, Dict, List

import pytest

import auditbuf
from conftest import VECTORS, Collect, assert_accounted

NOW = re.compile(rb"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def pipeline(collect: Collect, **kw: Any) -> auditbuf.Pipeline:
    return auditbuf.Pipeline(sink=collect, **kw)


def one(collect: Collect, event: Any) -> bytes:
    """Records `event` alone and returns the bytes the sink got."""
    p = pipeline(collect)
    p.record(event)
    report = p.close()
    assert report.completed
    assert_accounted(report.stats, delivered=1)
    assert len(collect.events) == 1
    return collect.events[0]


def matches_wire(got: bytes, wire: bytes) -> bool:
    """`wire` with `<NOW>` standing for a generated timestamp."""
    if b"<NOW>" not in wire:
        return got == wire
    before, after = wire.split(b"<NOW>")
    return (
        got.startswith(before)
        and got.endswith(after)
        and len(got) == len(before) + 24 + len(after)
        and NOW.fullmatch(got[len(before) : len(before) + 24]) is not None
    )


class TestInputs:
    def test_dict_is_encoded_in_rust_and_completed(self, collect: Collect) -> None:
        got = one(collect, {"event_type": "user.login", "user": "ada"})
        assert re.fullmatch(
            rb'\{"version":"1\.0","event_timestamp":"[^"]{24}","event_type":"user\.login","user":"ada"\}',
            got,
        ), got

    def test_every_json_type(self, collect: Collect) -> None:
        event = {
            "version": "1.0",
            "event_timestamp": "t",
            "s": 'quote" back\\ nl\n tab\t bell\x07 é 日本 🎉',
            "i": -42,
            "zero": 0,
            "big": 2**200,
            "neg_big": -(2**100),
            "u64": 2**64 - 1,
            "f": 1.5,
            "tiny": 5e-324,
            "t": True,
            "false": False,
            "n": None,
            "l": [1, "two", [3.0], {}],
            "tuple": (1, 2),
            "nested": {"a": {"b": {"c": []}}},
        }
        got = one(collect, event)
        assert json.loads(got) == json.loads(json.dumps(event))
        assert got.startswith(b'{"version":"1.0","event_timestamp":"t","s":"quote\\" back\\\\ nl\\n tab\\t bell\\u0007 ')
        assert b'"big":' + str(2**200).encode() in got
        assert b'"neg_big":-' + str(2**100).encode() in got

    def test_same_bytes_as_compact_json_dumps(self, collect: Collect) -> None:
        event = {"event_type": "x", "a": [1, {"b": None}], "c": "é\u2028", "d": 1.25}
        got = one(collect, event)
        text = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        assert got.endswith(text[1:]), (got, text)

    def test_subclasses_and_datetimes(self, collect: Collect) -> None:
        class Color(str, enum.Enum):
            RED = "red"

        class Level(enum.IntEnum):
            HIGH = 3

        class Big(int):
            def __repr__(self) -> str:
                return "not digits"

        berlin = dt.timezone(dt.timedelta(hours=2))
        event = {
            "color": Color.RED,
            "level": Level.HIGH,
            "big": Big(2**70),
            "od": OrderedDict([("z", 1), ("a", 2)]),
            "aware": dt.datetime(2026, 1, 2, 5, 4, 5, 6000, tzinfo=berlin),
            "naive": dt.datetime(2026, 1, 2, 3, 4, 5),
            "micro": dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.timezone.utc),
            "day": dt.date(2026, 1, 2),
        }
        v = json.loads(one(collect, event))
        assert v["color"] == "red" and v["level"] == 3 and v["big"] == 2**70
        assert list(v["od"]) == ["z", "a"]
        assert v["aware"] == "2026-01-02T03:04:05.006Z"
        assert v["naive"] == "2026-01-02T03:04:05.000Z"
        assert v["micro"] == "2026-01-02T03:04:05.123456Z"
        assert v["day"] == "2026-01-02"

    @pytest.mark.parametrize(
        "kind", [bytes, bytearray, lambda b: memoryview(b), lambda b: b.decode()]
    )
    def test_json_text_in_every_form(self, collect: Collect, kind: Any) -> None:
        got = one(collect, kind(b' {"event_type":"x",\n "n":1}\n'))
        assert got.endswith(b',"event_type":"x",  "n":1}')

    def test_other_types_are_a_serialize_error_and_counted(self, collect: Collect) -> None:
        p = pipeline(collect)
        assert p.stats().rejected.total() == 0
        bads: List[Any] = [[1, 2], 5, None, 1.5, object(), {"event_type"}]
        for n, bad in enumerate(bads, start=1):
            with pytest.raises(auditbuf.SerializeError) as e:
                p.record(bad)  # type: ignore[arg-type]
            # Still a TypeError, as before: `except TypeError` keeps working.
            assert isinstance(e.value, TypeError) and isinstance(e.value, auditbuf.InvalidEvent)
            assert (e.value.code, e.value.name) == (20, "serialize")
            assert str(e.value) == (
                "record() takes a dict, or JSON text as bytes, bytearray, memoryview or str, "
                f"not {type(bad).__name__}"
            )
            assert getattr(e.value, "field", None) is None
            r = p.stats().rejected
            assert (r.serialize, r.total()) == (n, n), r
        # A good event after the bad ones is taken and delivered as usual.
        p.record({"event_type": "after"})
        stats = p.close().stats
        assert (stats.rejected.serialize, stats.rejected.total()) == (len(bads), len(bads))
        assert stats.recorded == 1
        assert_accounted(stats, delivered=1)
        assert json.loads(collect.events[0])["event_type"] == "after"

    def test_a_released_memoryview_raises_and_counts(self, collect: Collect) -> None:
        p = pipeline(collect)
        view = memoryview(b'{"event_type":"x"}')
        view.release()
        with pytest.raises(ValueError, match="released"):
            p.record(view)
        assert p.stats().rejected.serialize == 1
        p.record(memoryview(b'{"event_type":"y"}'))
        stats = p.close().stats
        assert stats.rejected.total() == 1
        assert_accounted(stats, delivered=1)


class TestEncoderErrors:
    @pytest.mark.parametrize(
        "event, path",
        [
            ({"event_data": {"items": [0, 1, 2, {1, 2}]}}, "event_data.items[3]"),
            ({"a": object()}, "a"),
            ({"a": (1, [2, b"bytes"])}, "a[1][1]"),
            ({"f": float("nan")}, "f"),
            ({"f": [float("inf")]}, "f[0]"),
            ({"k": {1: "int key"}}, "k"),
            ({"s": "lone \ud800 surrogate"}, "s"),
            # What every record path refuses: U+0000 and magnitudes of 1e308 or more.
            ({"s": "nul \x00 inside"}, "s"),
            ({"n": {"k\x00": 1}}, "n"),
            ({"i": 10**400}, "i"),
            ({"i": [-(10**308)]}, "i[0]"),
            ({"f": 1e308}, "f"),
        ],
    )
    def test_type_error_names_the_path(
        self, collect: Collect, event: dict, path: str
    ) -> None:
        p = pipeline(collect)
        with pytest.raises(auditbuf.SerializeError) as e:
            p.record(event)
        assert isinstance(e.value, TypeError)
        assert isinstance(e.value, ValueError)
        assert isinstance(e.value, auditbuf.InvalidEvent)
        assert str(e.value).startswith(path + ": "), str(e.value)
        assert (e.value.code, e.value.name) == (20, "serialize")
        stats = p.close().stats
        assert stats.rejected.serialize == 1 and stats.recorded == 0

    def test_large_numbers_a_double_holds_pass(self, collect: Collect) -> None:
        got = one(collect, {"i": -(10**307), "f": 1.7e307})
        assert got.endswith(b'"i":-1' + b"0" * 307 + b',"f":1.7e307}'), got

    def test_a_dict_containing_itself_stops(self, collect: Collect) -> None:
        loop: dict = {}
        loop["self"] = loop
        p = pipeline(collect)
        with pytest.raises(auditbuf.SerializeError, match="nested deeper"):
            p.record(loop)
        assert p.close().stats.rejected.serialize == 1

    def test_nesting_is_refused_where_json_text_is(self, collect: Collect) -> None:
        p = pipeline(collect)
        # 126 levels, the event counted, pass both ways; 127 fail both ways.
        p.record(nested(126))
        p.record(json.dumps(nested(126)).encode())
        with pytest.raises(auditbuf.SerializeError, match="nested deeper than 126"):
            p.record(nested(127))
        with pytest.raises(auditbuf.InvalidEvent, match="nest"):
            p.record(json.dumps(nested(127)).encode())
        stats = p.close().stats
        assert_accounted(stats, delivered=2)
        assert (stats.rejected.serialize, stats.rejected.invalid_json) == (1, 1)

    def test_too_large_while_encoding(self, collect: Collect) -> None:
        p = pipeline(collect, max_event_bytes=1000)
        with pytest.raises(auditbuf.InvalidEvent) as e:
            p.record({"a": ["x" * 100] * 100})
        assert e.value.name == "too_large"
        with pytest.raises(auditbuf.InvalidEvent) as e:
            p.record(b'{"a":"' + b"x" * 2000 + b'"}')
        assert e.value.name == "too_large"
        assert p.close().stats.rejected.too_large == 2

    def test_a_tzinfo_that_raises_propagates_and_counts(self, collect: Collect) -> None:
        class Broken(dt.tzinfo):
            def utcoffset(self, d: Any) -> dt.timedelta:
                raise RuntimeError("broken tz")

        p = pipeline(collect)
        with pytest.raises(RuntimeError, match="broken tz"):
            p.record({"when": dt.datetime(2026, 1, 1, tzinfo=Broken())})
        assert p.close().stats.rejected.serialize == 1


def nested(levels: int) -> dict:
    """A dict of `levels` levels, itself counted."""
    d: dict = {}
    for _ in range(levels - 1):
        d = {"k": d}
    return d


class TestRecordEvent:
    def test_an_argument_of_the_wrong_type_is_named(self, collect: Collect) -> None:
        p = pipeline(collect)
        base: Dict[str, Any] = dict(
            event_type="t", event_category="c", event_action="a",
            event_outcome="success", correlation_id="r",
        )
        wrong_types: List[Any] = [
            ({"actor_id": 5}, "actor_id", "actor_id: must be a str, not int"),
            ({"event_type": 3}, "event_type", "event_type: must be a str, not int"),
            ({"correlation_id": None}, "correlation_id", "correlation_id: must be a str, not NoneType"),
            ({"version": b"1.0"}, "version", "version: must be a str, not bytes"),
            ({"duration_ms": "x"}, "duration_ms", "duration_ms: must be an int, not str"),
            ({"duration_ms": 1.5}, "duration_ms", "duration_ms: must be an int, not float"),
            ({"retention_days": "30"}, "retention_days", "retention_days: must be an int, not str"),
            ({"is_sensitive": 1}, "is_sensitive", "is_sensitive: must be a bool, not int"),
            ({"event_timestamp": 5}, "event_timestamp",
             "event_timestamp: must be a str or a datetime, not int"),
            ({"parent_event_date": dt.date(2026, 1, 2)}, "parent_event_date",
             "parent_event_date: must be a str or a datetime, not date"),
            ({"event_data": [1, 2]}, "event_data",
             "event_data: must be a dict, or JSON text of an object as str or bytes, not list"),
            ({"event_data": bytearray(b"{}")}, "event_data",
             "event_data: must be a dict, or JSON text of an object as str or bytes, "
             "not bytearray"),
        ]
        assert p.stats().rejected.total() == 0
        for n, (bad, field, message) in enumerate(wrong_types, start=1):
            with pytest.raises(auditbuf.SerializeError) as e:
                p.record_event(**{**base, **bad})
            # Still a TypeError, as before: `except TypeError` keeps working.
            assert isinstance(e.value, TypeError) and isinstance(e.value, auditbuf.InvalidEvent)
            assert (e.value.code, e.value.name, e.value.field) == (20, "serialize", field)
            assert str(e.value) == message
            r = p.stats().rejected
            assert (r.serialize, r.total()) == (n, n), (bad, r)
        # An int out of the field's range: its value is the problem, an InvalidEvent.
        out_of_range: List[Any] = [
            ({"retention_days": -1}, "retention_days", "4294967295"),
            ({"retention_days": 2**32}, "retention_days", "4294967295"),
            ({"duration_ms": -5}, "duration_ms", "9223372036854775807"),
            ({"duration_ms": 2**63}, "duration_ms", "9223372036854775807"),
            ({"duration_ms": 2**64}, "duration_ms", "9223372036854775807"),
        ]
        for n, (bad, field, top) in enumerate(out_of_range, start=1):
            with pytest.raises(auditbuf.InvalidEvent) as e:
                p.record_event(**{**base, **bad})
            assert type(e.value) is auditbuf.InvalidEvent
            assert (e.value.code, e.value.name, e.value.field) == (19, "invalid_field", field)
            assert str(e.value) == f"field {field}: must be an int from 0 to {top}"
            r = p.stats().rejected
            assert (r.invalid_field, r.total()) == (n, len(wrong_types) + n), (bad, r)
        # None is absent, as before; a good event after the bad ones is delivered.
        p.record_event(**base, actor_id=None, duration_ms=None, is_sensitive=None)
        stats = p.close().stats
        r = stats.rejected
        assert (r.serialize, r.invalid_field, r.total()) == (
            len(wrong_types), len(out_of_range), len(wrong_types) + len(out_of_range),
        ), r
        assert stats.recorded == 1
        assert_accounted(stats, delivered=1)

    def test_event_data_of_the_wrong_type_or_shape_is_counted_once(
        self, collect: Collect
    ) -> None:
        # A list is a SerializeError (a TypeError, as before), JSON text of a list an
        # InvalidEvent: both InvalidEvents, both counted, once each.
        p = pipeline(collect)
        base: Dict[str, Any] = dict(
            event_type="t", event_category="c", event_action="a",
            event_outcome="success", correlation_id="r",
        )
        assert p.stats().rejected.total() == 0
        with pytest.raises(TypeError) as e:
            p.record_event(**base, event_data=[1, 2])  # type: ignore[arg-type]
        assert isinstance(e.value, auditbuf.SerializeError)
        assert (e.value.name, e.value.field) == ("serialize", "event_data")
        assert "not list" in str(e.value)
        r = p.stats().rejected
        assert (r.serialize, r.invalid_field, r.total()) == (1, 0, 1), r
        with pytest.raises(auditbuf.InvalidEvent) as i:
            p.record_event(**base, event_data="[1,2]")
        assert (i.value.name, i.value.field) == ("invalid_field", "event_data")
        r = p.stats().rejected
        assert (r.serialize, r.invalid_field, r.total()) == (1, 1, 2), r
        with pytest.raises(auditbuf.SerializeError) as e:
            p.record_event(**base, event_data={"k": [float("nan")]})
        assert (e.value.name, e.value.field) == ("serialize", "event_data")
        assert "event_data.k[0]" in str(e.value), str(e.value)
        p.record_event(**base, event_data={"k": [1, 2]})
        stats = p.close().stats
        assert stats.rejected.total() == 3
        assert_accounted(stats, delivered=1)
        assert json.loads(collect.events[0])["event_data"] == {"event_type": "t", "k": [1, 2]}

    def test_a_tzinfo_that_raises_propagates_and_counts(self, collect: Collect) -> None:
        class Broken(dt.tzinfo):
            def utcoffset(self, d: Any) -> dt.timedelta:
                raise RuntimeError("broken tz")

        p = pipeline(collect)
        base: Dict[str, Any] = dict(
            event_type="t", event_category="c", event_action="a",
            event_outcome="success", correlation_id="r",
        )
        assert p.stats().rejected.total() == 0
        with pytest.raises(RuntimeError, match="broken tz"):
            p.record_event(**base, event_timestamp=dt.datetime(2026, 1, 1, tzinfo=Broken()))
        assert p.stats().rejected.serialize == 1
        p.record_event(**base)
        stats = p.close().stats
        assert (stats.rejected.serialize, stats.rejected.total()) == (1, 1)
        assert_accounted(stats, delivered=1)

    def test_bad_event_data_json_names_the_field(self, collect: Collect) -> None:
        p = pipeline(collect)
        with pytest.raises(auditbuf.InvalidEvent) as e:
            p.record_event(
                event_type="t", event_category="c", event_action="a",
                event_outcome="success", correlation_id="r", event_data='{"a":',
            )
        assert (e.value.name, e.value.field) == ("invalid_json", "event_data")
        assert str(e.value) == (
            "field event_data: not valid JSON at byte 5 of its text: unexpected end of input"
        )
        # JSON text that is the whole event has no field.
        with pytest.raises(auditbuf.InvalidEvent) as e:
            p.record(b'{"a":')
        assert e.value.name == "invalid_json" and getattr(e.value, "field", None) is None
        stats = p.close().stats
        assert_accounted(stats, delivered=0)
        assert stats.rejected.invalid_json == 2

    def test_event_data_nesting_is_refused_where_the_core_refuses_it(
        self, collect: Collect
    ) -> None:
        # event_data sits inside the event: 125 of the event's 126 levels are its own.
        p = pipeline(collect)
        base = dict(
            event_type="t", event_category="c", event_action="a",
            event_outcome="success", correlation_id="r",
        )
        p.record_event(**base, event_data=nested(125))
        p.record_event(**base, event_data=json.dumps(nested(125)))
        with pytest.raises(auditbuf.SerializeError, match="nested deeper than 126"):
            p.record_event(**base, event_data=nested(126))
        with pytest.raises(auditbuf.InvalidEvent):
            p.record_event(**base, event_data=json.dumps(nested(126)))
        stats = p.close().stats
        assert_accounted(stats, delivered=2)
        assert (stats.rejected.serialize, stats.rejected.invalid_json) == (1, 1)

    def test_typed_event_with_a_dict_payload(self, collect: Collect) -> None:
        p = pipeline(collect)
        p.record_event(
            event_type="gateway.signal.received",
            event_category="gateway",
            event_action="received",
            event_outcome="success",
            correlation_id="rr-1",
            actor_id="gateway",
            duration_ms=12,
            is_sensitive=False,
            event_timestamp=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
            event_data={"signal_name": "OOMKilled", "labels": {"a": 1}},
        )
        assert_accounted(p.close().stats, delivered=1)
        assert collect.events == [
            b'{"version":"1.0","event_type":"gateway.signal.received",'
            b'"event_timestamp":"2026-01-02T03:04:05.000Z","event_category":"gateway",'
            b'"event_action":"received","event_outcome":"success","correlation_id":"rr-1",'
            b'"actor_id":"gateway","duration_ms":12,"is_sensitive":false,'
            b'"event_data":{"event_type":"gateway.signal.received",'
            b'"signal_name":"OOMKilled","labels":{"a":1}}}'
        ]

    def test_refusals_are_invalid_events_and_counted(self, collect: Collect) -> None:
        p = pipeline(collect)
        base = dict(
            event_type="x",
            event_category="c",
            event_action="a",
            event_outcome="success",
            correlation_id="r",
        )
        with pytest.raises(auditbuf.InvalidEvent) as e:
            p.record_event(**{**base, "correlation_id": ""})
        assert (e.value.name, e.value.field) == ("missing_field", "correlation_id")
        with pytest.raises(auditbuf.InvalidEvent) as e:
            p.record_event(**base, event_data={"event_type": "y"})
        assert (e.value.name, e.value.field) == ("invalid_field", "event_data.event_type")
        with pytest.raises(auditbuf.InvalidEvent) as e:
            p.record_event(**{**base, "actor_id": "\udc80"})
        assert (e.value.name, e.value.field) == ("invalid_field", "actor_id")
        with pytest.raises(auditbuf.SerializeError, match=r"^event_data\.s\[0\]: "):
            p.record_event(**base, event_data={"s": [{1}]})
        with pytest.raises(TypeError, match="^event_timestamp: must be a str or a datetime"):
            p.record_event(**base, event_timestamp=5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="^event_type: must be a str, not int$"):
            p.record_event(**{**base, "event_type": 5})  # type: ignore[arg-type]
        r = p.close().stats.rejected
        assert (r.missing_field, r.invalid_field, r.serialize) == (1, 2, 3)


def vectors(suffix: str) -> List[Any]:
    names = sorted(p.name[: -len(suffix)] for p in VECTORS.glob("*" + suffix))
    assert names, f"no *{suffix} vectors in {VECTORS}"
    return names


class TestSharedVectors:
    """testdata/events: the bytes the Rust pipeline hands its sink, byte for byte."""

    @pytest.mark.parametrize("name", vectors(".typed.json"))
    def test_typed(self, collect: Collect, name: str) -> None:
        fields = json.loads((VECTORS / f"{name}.typed.json").read_text("utf-8"))
        fields.pop("description", None)
        if "event_data_json" in fields:
            fields["event_data"] = fields.pop("event_data_json")
        self.check(collect, name, lambda p: p.record_event(**fields))

    @pytest.mark.parametrize("name", [n for n in vectors(".json") if not n.endswith(".typed")])
    def test_raw(self, collect: Collect, name: str) -> None:
        raw = (VECTORS / f"{name}.json").read_bytes()
        self.check(collect, name, lambda p: p.record(raw))

    def check(self, collect: Collect, name: str, record: Any) -> None:
        p = pipeline(collect)
        error = VECTORS / f"{name}.error"
        if error.exists():
            reason = error.read_text().strip()
            with pytest.raises(auditbuf.InvalidEvent) as e:
                record(p)
            assert e.value.name == reason
            stats = p.close().stats
            assert getattr(stats.rejected, reason) == 1
            assert stats.recorded == 0
            return
        record(p)
        assert_accounted(p.close().stats, delivered=1)
        wire = (VECTORS / f"{name}.wire").read_bytes()
        assert matches_wire(collect.events[0], wire), (collect.events[0], wire)


class TestEncoderRoundTrip:
    """The dict encoder's output is completed without being scanned again, so it must be
    valid JSON that reads back as what was given: checked on random nested values."""

    # No U+0000: it is refused (see TestEncoderErrors); '\x01' and '\x1f' stand for the
    # control characters that are escaped.
    ALPHABET = ['a', 'Z', '0', ' ', '"', '\\', '/', '\n', '\r', '\t', '\x01', '\x1f', '\x7f',
                'é', 'ß', '日', '🎉', '\u2028', '\ufeff', 'x' * 9]

    def value(self, rng: Any, depth: int) -> Any:
        kind = rng.randrange(10 if depth < 4 else 6)
        if kind == 0:
            return rng.choice([None, True, False])
        if kind == 1:
            return rng.choice([0, -1, 2**63 - 1, -(2**63), 2**64, -(2**64) - 1, 10**40, rng.randrange(-1000, 1000)])
        if kind == 2:
            return rng.choice([0.0, -0.0, 1.5, 1e-300, 1e300, 5e-324, rng.uniform(-1e6, 1e6), 1 / 3])
        if kind in (3, 4, 5):
            return "".join(rng.choice(self.ALPHABET) for _ in range(rng.randrange(0, 24)))
        if kind in (6, 7):
            return [self.value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
        if kind == 8:
            return tuple(self.value(rng, depth + 1) for _ in range(rng.randrange(0, 4)))
        return {
            "".join(rng.choice(self.ALPHABET) for _ in range(rng.randrange(0, 6))): self.value(
                rng, depth + 1
            )
            for _ in range(rng.randrange(0, 5))
        }

    def test_random_values_read_back_equal(self, collect: Collect) -> None:
        import random

        rng = random.Random(20261130)
        p = pipeline(collect, max_event_bytes=1 << 20)
        events = []
        for _ in range(2000):
            event = {"event_type": "fuzz", "v": self.value(rng, 0)}
            if rng.random() < 0.2:
                event["version"] = "2"
            if rng.random() < 0.2:
                event["event_timestamp"] = "t"
            events.append(event)
            p.record(event)
        assert_accounted(p.close().stats, delivered=len(events))
        for given, got in zip(events, collect.events):
            back = json.loads(got)
            assert b"\n" not in got and b"\r" not in got
            got.decode("utf-8")
            expect = json.loads(json.dumps(given))
            expect.setdefault("version", "1.0")
            if "event_timestamp" not in given:
                assert NOW.fullmatch(back["event_timestamp"].encode())
                expect["event_timestamp"] = back["event_timestamp"]
            assert back == expect
            if "version" not in given and "event_timestamp" not in given:
                assert list(back)[:2] == ["version", "event_timestamp"]
