"""record_cadf: a CADF event from a dict with CADF's wire names, its refusals (each
counted), the shared cadf_* vectors byte for byte, and the "rabbitmq" sink type (from
config= and from the environment) against a port that refuses connections."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import time
import uuid
from typing import Any, Dict, Iterator, List

import pytest

import auditbuf
from conftest import VECTORS, Collect, assert_accounted

SCHEMA = "http://schemas.dmtf.org/cloud/audit/1.0/event"
UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
CADF_NOW = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00"


def minimal(**fields: Any) -> Dict[str, Any]:
    event: Dict[str, Any] = {
        "action": "create",
        "outcome": "success",
        "initiator": {"typeURI": "service/security/account/user", "id": "u-1"},
        "target": {"typeURI": "compute/server", "id": "s-1"},
        "observer": {"typeURI": "service/compute", "id": "nova-api-01"},
    }
    event.update(fields)
    return event


def one(collect: Collect, event: Any) -> bytes:
    """Records `event` alone through a callable sink and returns the bytes it got."""
    p = auditbuf.Pipeline(sink=collect)
    p.record_cadf(event)
    report = p.close()
    assert report.completed
    assert_accounted(report.stats, delivered=1)
    assert len(collect.events) == 1
    return collect.events[0]


class TestRecordCadf:
    def test_a_full_event_on_the_wire(self, collect: Collect) -> None:
        initiator = {
            "typeURI": "service/security/account/user",
            "name": "ada",
            "domain": "Default",
            "id": "4b3a9c7e",
            "addresses": [{"url": "https://keystone.example.com/v3", "name": "public"}, {"url": "10.0.0.7"}],
            "host": {"id": "h-1", "address": "10.0.0.7", "agent": "openstackclient", "platform": "linux"},
            "attachments": [{"name": "token", "typeURI": "xs:string", "content": "scoped"}],
            "project_id": "e914",
            "domain_id": "default",
            "project_name": "payments",
            "project_domain_name": "Default",
            "domain_name": "Default",
            "app_credential_id": "ac-31",
        }
        attachments = [
            {"name": "payload", "typeURI": "mime:application/json",
             "content": {"flavor": "m1.small", "count": 2, "tags": ["a", None, 1.5]}},
            {"typeURI": "xs:string", "content": "quota \"exceeded\"\n"},
            {"typeURI": "mime:application/json", "content": b'{"raw": [1,  2]}'},
            {"typeURI": "mime:application/json", "content": [1, "two"]},
        ]
        before = dt.datetime.now(dt.timezone.utc)
        got = one(collect, {
            "action": "create",
            "outcome": "failure",
            "reason": {"reasonType": "HTTP", "reasonCode": "409"},
            "initiator": initiator,
            "target": {"typeURI": "compute/server", "name": "web-1", "id": "s-99"},
            "observer": {"typeURI": "service/compute", "id": "nova-api-01"},
            "attachments": attachments,
            "requestPath": "/v2.1/servers",
        })
        after = dt.datetime.now(dt.timezone.utc)
        v = json.loads(got)
        assert list(v) == [
            "typeURI", "id", "eventTime", "eventType", "action", "outcome", "reason",
            "initiator", "target", "observer", "attachments", "requestPath",
        ]
        assert v["typeURI"] == SCHEMA and v["eventType"] == "activity"
        assert re.fullmatch(UUID4, v["id"]) and uuid.UUID(v["id"]).version == 4
        assert re.fullmatch(CADF_NOW, v["eventTime"]), v["eventTime"]
        at = dt.datetime.fromisoformat(v["eventTime"])
        assert before - dt.timedelta(seconds=1) <= at <= after + dt.timedelta(seconds=1)
        assert (v["action"], v["outcome"]) == ("create", "failure")
        assert v["reason"] == {"reasonType": "HTTP", "reasonCode": "409"}
        assert v["requestPath"] == "/v2.1/servers"
        assert v["initiator"] == initiator
        assert list(v["initiator"]) == list(initiator)
        assert v["target"] == {"typeURI": "compute/server", "name": "web-1", "id": "s-99"}
        assert v["observer"] == {"typeURI": "service/compute", "id": "nova-api-01"}
        assert v["attachments"] == [
            {"name": "payload", "typeURI": "mime:application/json",
             "content": {"flavor": "m1.small", "count": 2, "tags": ["a", None, 1.5]}},
            {"typeURI": "xs:string", "content": "quota \"exceeded\"\n"},
            {"typeURI": "mime:application/json", "content": {"raw": [1, 2]}},
            {"typeURI": "mime:application/json", "content": [1, "two"]},
        ]
        # JSON content is JSON on the wire (bytes as written), text a JSON string.
        assert b'"content":{"flavor":"m1.small","count":2,"tags":["a",null,1.5]}' in got
        assert b'"content":"quota \\"exceeded\\"\\n"' in got
        assert b'"content":{"raw": [1,  2]}' in got

    def test_given_values_are_kept_and_ids_are_new_each_time(self, collect: Collect) -> None:
        p = auditbuf.Pipeline(sink=collect)
        given = minimal(
            typeURI="urn:x", id="7c9e6679-7425-40de-944b-e07fc1f90ae7",
            eventTime="2026-11-23T10:15:30.123456+00:00", eventType="control",
        )
        p.record_cadf(given)
        p.record_cadf(minimal())
        p.record_cadf(minimal())
        assert_accounted(p.close().stats, delivered=3)
        first, *generated = collect.json()
        assert {k: first[k] for k in ("typeURI", "id", "eventTime", "eventType")} == {
            "typeURI": "urn:x", "id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
            "eventTime": "2026-11-23T10:15:30.123456+00:00", "eventType": "control",
        }
        ids = [e["id"] for e in generated]
        assert all(re.fullmatch(UUID4, i) for i in ids) and ids[0] != ids[1]

    def test_an_event_time_given_as_a_datetime_is_written_in_utc(self, collect: Collect) -> None:
        berlin = dt.timezone(dt.timedelta(hours=2))
        when = dt.datetime(2026, 1, 2, 5, 4, 5, 123456, tzinfo=berlin)
        v = json.loads(one(collect, minimal(eventTime=when)))
        assert v["eventTime"] == "2026-01-02T03:04:05.123456Z"

    def test_none_is_the_same_as_absent(self, collect: Collect) -> None:
        fixed = dict(id="e-1", eventTime="2026-11-23T10:15:30Z")
        p = auditbuf.Pipeline(sink=collect)
        p.record_cadf(minimal(**fixed))
        p.record_cadf(minimal(
            **fixed, typeURI=None, eventType=None, reason=None, attachments=None, requestPath=None,
            initiator={"typeURI": "service/security/account/user", "id": "u-1", "name": None,
                       "addresses": None, "host": None, "attachments": None, "project_id": None},
        ))
        assert_accounted(p.close().stats, delivered=2)
        assert collect.events[0] == collect.events[1]

    def test_lists_may_be_tuples_and_dicts_may_be_subclasses(self, collect: Collect) -> None:
        from collections import OrderedDict

        initiator = OrderedDict(typeURI="user", id="u-1", addresses=({"url": "10.0.0.1"},))
        v = json.loads(one(collect, minimal(
            initiator=initiator, attachments=({"typeURI": "t", "content": (1, 2)},),
        )))
        assert v["initiator"]["addresses"] == [{"url": "10.0.0.1"}]
        assert v["attachments"] == [{"typeURI": "t", "content": [1, 2]}]

    def test_not_a_dict_is_a_serialize_error_and_counted(self, collect: Collect) -> None:
        p = auditbuf.Pipeline(sink=collect)
        assert p.stats().rejected.total() == 0
        bads: List[Any] = [None, "{}", b"{}", [minimal()], 5]
        for n, bad in enumerate(bads, start=1):
            with pytest.raises(auditbuf.SerializeError) as e:
                p.record_cadf(bad)  # type: ignore[arg-type]
            # Still a TypeError, as before: `except TypeError` keeps working.
            assert isinstance(e.value, TypeError) and isinstance(e.value, auditbuf.InvalidEvent)
            assert (e.value.code, e.value.name) == (20, "serialize")
            assert str(e.value) == f"record_cadf() takes a dict, not {type(bad).__name__}"
            r = p.stats().rejected
            assert (r.serialize, r.total()) == (n, n), r
        # A good event after the bad ones is taken and delivered as usual.
        p.record_cadf(minimal())
        stats = p.close().stats
        assert (stats.rejected.serialize, stats.rejected.total()) == (len(bads), len(bads))
        assert stats.recorded == 1
        assert_accounted(stats, delivered=1)
        assert json.loads(collect.events[0])["action"] == "create"


def with_initiator(**fields: Any) -> Dict[str, Any]:
    return minimal(initiator={"typeURI": "user", "id": "u-1", **fields})


def without(key: str) -> Dict[str, Any]:
    event = minimal()
    del event[key]
    return event


REFUSALS: List[Any] = [
    # event, name, field, message
    (minimal(outcome="ok"), "invalid_field", "outcome", "field outcome: must be"),
    (minimal(outcome=""), "missing_field", "outcome", "outcome"),
    (without("action"), "missing_field", "action", "required field action"),
    (minimal(action=""), "missing_field", "action", "required field action"),
    (without("observer"), "missing_field", "observer", "required field observer is missing"),
    (minimal(target={"typeURI": "server"}), "missing_field", "target.id", "target.id"),
    (minimal(eventType="audit"), "invalid_field", "eventType", "eventType"),
    (minimal(eventTime="2026-11-23 10:15:30"), "invalid_field", "eventTime", "RFC 3339"),
    (minimal(id="x" * 256), "invalid_field", "id", "255 bytes"),
    # Wrong types, named with their place.
    (minimal(action=5), "invalid_field", "action", "field action: must be a str, not int"),
    (minimal(eventTime=1.5), "invalid_field", "eventTime", "must be a str or a datetime, not float"),
    (minimal(initiator="ada"), "invalid_field", "initiator", "field initiator: must be a dict, not str"),
    (minimal(reason=["HTTP"]), "invalid_field", "reason", "must be a dict, not list"),
    (minimal(reason={"reasonCode": 409}), "invalid_field", "reason.reasonCode", "not int"),
    (with_initiator(addresses=[{"url": "a"}, {"url": b"b"}]), "invalid_field",
     "initiator.addresses.url", "field initiator.addresses[1].url: must be a str, not bytes"),
    (with_initiator(addresses={"url": "a"}), "invalid_field", "initiator.addresses",
     "must be a list, not dict"),
    (with_initiator(host={"id": ["h"]}), "invalid_field", "initiator.host.id", "not list"),
    (minimal(attachments="x"), "invalid_field", "attachments", "must be a list, not str"),
    (minimal(attachments=[{"typeURI": "t", "content": 5}]), "invalid_field",
     "attachments.content", "field attachments[0].content: must be a str (text), bytes"),
    (minimal(attachments=[{"typeURI": "t"}]), "missing_field", "attachments.content",
     "required field attachments[0].content is missing"),
    (minimal(attachments=[{"content": "x"}]), "missing_field", "attachments.typeURI",
     "attachments.typeURI"),
    (with_initiator(name="lone \udc80"), "invalid_field", "initiator.name", "is not valid UTF-8"),
    (with_initiator(project_id="p\x00"), "invalid_field", "initiator.project_id", "project_id"),
    # Unknown keys: CADF's wire names only.
    (minimal(actor="ada"), "invalid_field", "actor", "field actor: unknown field of a CADF event"),
    (minimal(**{"request_path": "/"}), "invalid_field", "request_path", "unknown field"),
    (with_initiator(projectId="p"), "invalid_field", "initiator.projectId",
     "unknown field of a CADF resource"),
    (with_initiator(host={"os": "linux"}), "invalid_field", "initiator.host.os", "of a host"),
    (with_initiator(addresses=[{"url": "a", "port": 1}]), "invalid_field",
     "initiator.addresses.port", "field initiator.addresses[0].port: unknown field of an address"),
    (minimal(attachments=[{"typeURI": "t", "content": "x", "mime": "y"}]), "invalid_field",
     "attachments.mime", "of an attachment"),
    (minimal(reason={"code": "1"}), "invalid_field", "reason.code", "of a reason"),
    ({**minimal(), 1: "x"}, "invalid_field", "1", "unknown field of a CADF event"),
    # JSON content: checked as the core checks raw events.
    (minimal(attachments=[{"typeURI": "t", "content": b'{"a": 1, "a": 2}'}]), "invalid_json", None, ""),
    (minimal(attachments=[{"typeURI": "t", "content": b"{"}]), "invalid_json", None, ""),
    (minimal(attachments=[{"typeURI": "t", "content": b'"\xff"'}]), "invalid_utf8",
     "attachments.content", "field attachments[0].content: JSON text (bytes) that is not valid UTF-8 at byte 1"),
    (with_initiator(addresses=[{"url": "a"}, {"name": "n"}]), "missing_field",
     "initiator.addresses.url", "required field initiator.addresses[1].url is missing"),
]


class TestRefusals:
    @pytest.mark.parametrize("event, name, field, message", REFUSALS)
    def test_refused_named_and_counted(
        self, collect: Collect, event: Dict[Any, Any], name: str, field: str, message: str
    ) -> None:
        p = auditbuf.Pipeline(sink=collect)
        with pytest.raises(auditbuf.InvalidEvent) as e:
            p.record_cadf(event)  # type: ignore[arg-type]
        assert type(e.value) is auditbuf.InvalidEvent
        assert e.value.name == name, str(e.value)
        if field is not None:
            assert e.value.field == field, str(e.value)
        assert message in str(e.value), str(e.value)
        # The pipeline takes the next event as usual.
        p.record_cadf(minimal())
        stats = p.close().stats
        assert getattr(stats.rejected, name) == 1 and stats.rejected.total() == 1, stats
        assert stats.recorded == 1
        assert_accounted(stats, delivered=1)

    def test_content_nesting_is_refused_where_the_core_refuses_it(
        self, collect: Collect
    ) -> None:
        def nested(levels: int) -> Dict[str, Any]:
            d: Dict[str, Any] = {}
            for _ in range(levels - 1):
                d = {"k": d}
            return d

        # The event, its attachments array and the attachment hold the content: 123 levels
        # are left for it; a resource's attachment sits one level deeper (122).
        p = auditbuf.Pipeline(sink=collect)
        p.record_cadf(minimal(attachments=[{"typeURI": "t", "content": nested(123)}]))
        p.record_cadf(with_initiator(attachments=[{"typeURI": "t", "content": nested(122)}]))
        with pytest.raises(auditbuf.SerializeError, match="nested deeper"):
            p.record_cadf(minimal(attachments=[{"typeURI": "t", "content": nested(124)}]))
        with pytest.raises(auditbuf.SerializeError, match="nested deeper"):
            p.record_cadf(with_initiator(attachments=[{"typeURI": "t", "content": nested(123)}]))
        stats = p.close().stats
        assert_accounted(stats, delivered=2)
        assert stats.rejected.serialize == 2

    def test_content_with_no_json_form_is_a_serialize_error(self, collect: Collect) -> None:
        p = auditbuf.Pipeline(sink=collect)
        with pytest.raises(auditbuf.SerializeError) as e:
            p.record_cadf(minimal(attachments=[
                {"typeURI": "t", "content": "ok"},
                {"typeURI": "t", "content": {"items": [0, {1, 2}]}},
            ]))
        assert isinstance(e.value, TypeError)
        assert str(e.value).startswith("attachments[1].content.items[1]: "), str(e.value)
        with pytest.raises(auditbuf.SerializeError, match=r"^initiator\.attachments\[0\]\.content\.f: "):
            p.record_cadf(with_initiator(
                attachments=[{"typeURI": "t", "content": {"f": float("nan")}}]
            ))
        stats = p.close().stats
        assert stats.rejected.serialize == 2 and stats.recorded == 0

    def test_a_tzinfo_that_raises_propagates_and_counts(self, collect: Collect) -> None:
        class Broken(dt.tzinfo):
            def utcoffset(self, d: Any) -> dt.timedelta:
                raise RuntimeError("broken tz")

        p = auditbuf.Pipeline(sink=collect)
        with pytest.raises(RuntimeError, match="broken tz"):
            p.record_cadf(minimal(eventTime=dt.datetime(2026, 1, 1, tzinfo=Broken())))
        with pytest.raises(RuntimeError, match="broken tz"):
            p.record_cadf(minimal(attachments=[
                {"typeURI": "t", "content": {"at": dt.datetime(2026, 1, 1, tzinfo=Broken())}}
            ]))
        assert p.close().stats.rejected.serialize == 2

    def test_core_errors_map_as_for_record(self, collect: Collect) -> None:
        p = auditbuf.Pipeline(sink=collect, max_event_bytes=1000)
        with pytest.raises(auditbuf.InvalidEvent) as e:
            p.record_cadf(minimal(requestPath="/" + "x" * 2000))
        assert e.value.name == "too_large"
        p.close()
        with pytest.raises(auditbuf.Closed):
            p.record_cadf(minimal())
        r = p.stats().rejected
        assert (r.too_large, r.closed) == (1, 1)


def vector_names() -> List[str]:
    names = sorted(p.name[: -len(".cadf")] for p in VECTORS.glob("cadf_*.cadf"))
    assert names, f"no cadf_*.cadf vectors in {VECTORS}"
    return names


def from_vector(fields: Dict[str, Any]) -> Dict[str, Any]:
    """A vector's event as record_cadf takes it: `content_json` (exact JSON text) becomes
    bytes content, which is sent as written."""

    def attachments(a: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        out = []
        for item in a:
            item = dict(item)
            if "content_json" in item:
                item["content"] = item.pop("content_json").encode()
            out.append(item)
        return out

    event = {k: v for k, v in fields.items() if k != "description"}
    if "attachments" in event:
        event["attachments"] = attachments(event["attachments"])
    for role in ("initiator", "target", "observer"):
        if "attachments" in event.get(role, {}):
            event[role] = {**event[role], "attachments": attachments(event[role]["attachments"])}
    return event


class TestSharedVectors:
    """testdata/events/cadf_*: the bytes the Rust pipeline hands its sink, byte for byte."""

    @pytest.mark.parametrize("name", vector_names())
    def test_cadf(self, collect: Collect, name: str) -> None:
        event = from_vector(json.loads((VECTORS / f"{name}.cadf").read_text("utf-8")))
        p = auditbuf.Pipeline(sink=collect)
        error = VECTORS / f"{name}.error"
        if error.exists():
            reason = error.read_text().strip()
            with pytest.raises(auditbuf.InvalidEvent) as e:
                p.record_cadf(event)  # type: ignore[arg-type]
            assert e.value.name == reason, str(e.value)
            stats = p.close().stats
            assert getattr(stats.rejected, reason) == 1 and stats.recorded == 0
            return
        p.record_cadf(event)  # type: ignore[arg-type]
        assert_accounted(p.close().stats, delivered=1)
        wire = (VECTORS / f"{name}.wire").read_bytes()
        pattern = re.escape(wire).replace(b"<UUID>", UUID4.encode()).replace(
            b"<CADF_NOW>", CADF_NOW.encode()
        )
        assert re.fullmatch(pattern, collect.events[0]), (collect.events[0], wire)


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound, never listening."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    yield s.getsockname()[1]
    s.close()


FAST_RETRY = {"max_elapsed_ms": 300, "backoff_base_ms": 10, "backoff_cap_ms": 50}


def rabbitmq(port: int, **fields: Any) -> Dict[str, Any]:
    return {
        "type": "rabbitmq",
        "url": f"amqp://audit:s3cret@127.0.0.1:{port}/%2f",
        "queue": "notifications.info",
        "connect_timeout_ms": 200,
        "timeout_ms": 500,
        **fields,
    }


def record_until_stored(p: auditbuf.Pipeline, n: int) -> None:
    """Records `n` events and waits until the broker's refusals moved them all to the
    backing store."""
    for i in range(n):
        p.record_cadf(minimal(requestPath=f"/v2/servers/{i}"))
    deadline = time.monotonic() + 10
    while p.stats().stored < n and time.monotonic() < deadline:
        time.sleep(0.02)
    stats = p.stats()
    assert (stats.recorded, stats.stored, stats.delivered) == (n, n, 0), stats
    assert stats.batches_failed >= 1 and stats.retries >= 1, stats
    assert_accounted(stats)


class TestRabbitMqSink:
    def test_a_refused_broker_keeps_every_event_in_the_store(self, refused_port: int) -> None:
        p = auditbuf.Pipeline(
            backing_store={"type": "memory", "params": {}},
            flush_interval=0.01,
            config={"sink": rabbitmq(refused_port), "retry": FAST_RETRY},
        )
        record_until_stored(p, 5)
        error = p.last_error() or ""
        assert f"127.0.0.1:{refused_port}" in error, error
        assert "s3cret" not in error, error
        stats = p.close(timeout=2.0).stats
        # The memory store does not outlive the pipeline: what it held is dropped at close.
        assert_accounted(stats, delivered=0)
        assert (stats.recorded, stats.stored, stats.dropped.shutdown) == (5, 0, 5), stats
        assert stats.rejected.total() == 0, stats

    def test_from_env_reads_the_rabbitmq_variables(
        self, monkeypatch: pytest.MonkeyPatch, refused_port: int
    ) -> None:
        monkeypatch.setenv("MYAPP_CONFIG", json.dumps({
            "service": "keystone", "flush_interval_ms": 10, "retry": FAST_RETRY,
        }))
        monkeypatch.setenv("MYAPP_BACKING_STORE", '{"type":"memory","params":{}}')
        monkeypatch.setenv("MYAPP_RABBITMQ_URL", f"amqp://audit:s3cret@127.0.0.1:{refused_port}/%2f")
        monkeypatch.setenv("MYAPP_RABBITMQ_QUEUE", "notifications.info")
        p = auditbuf.Pipeline.from_env("MYAPP")
        assert p.service == "keystone"
        record_until_stored(p, 3)
        error = p.last_error() or ""
        assert f"127.0.0.1:{refused_port}" in error and "s3cret" not in error, error
        stats = p.close(timeout=2.0).stats
        assert_accounted(stats, delivered=0)
        assert (stats.recorded, stats.dropped.shutdown) == (3, 3), stats

    def test_from_env_refuses_two_sinks_or_none(
        self, monkeypatch: pytest.MonkeyPatch, collect: Collect
    ) -> None:
        with pytest.raises(auditbuf.ConfigError) as e:
            auditbuf.Pipeline.from_env("MYAPP")
        assert e.value.field == "url" and "MYAPP_RABBITMQ_URL" in str(e.value)
        monkeypatch.setenv("MYAPP_RABBITMQ_URL", "amqp://127.0.0.1:1/%2f")
        with pytest.raises(auditbuf.ConfigError) as e:
            auditbuf.Pipeline.from_env("MYAPP")
        assert e.value.field == "MYAPP_RABBITMQ_QUEUE", str(e.value)
        monkeypatch.setenv("MYAPP_RABBITMQ_QUEUE", "q")
        for args in ({"sink": collect}, {"url": "http://127.0.0.1:9"}):
            with pytest.raises(auditbuf.ConfigError) as e:
                auditbuf.Pipeline.from_env("MYAPP", **args)  # type: ignore[arg-type]
            assert e.value.field == "sink" and "MYAPP_RABBITMQ_*" in str(e.value)
        monkeypatch.setenv("MYAPP_RABBITMQ_URL", "http://127.0.0.1:1/")
        with pytest.raises(auditbuf.ConfigError) as e:
            auditbuf.Pipeline.from_env("MYAPP")
        assert e.value.field == "MYAPP_RABBITMQ_URL", str(e.value)

    def test_the_sink_document_is_checked(self) -> None:
        with pytest.raises(auditbuf.ConfigError) as e:
            auditbuf.Pipeline(config={"sink": rabbitmq(1, url="http://127.0.0.1:1/")})
        assert e.value.field == "sink.url", str(e.value)
        with pytest.raises(auditbuf.ConfigError) as e:
            auditbuf.Pipeline(config={"sink": rabbitmq(1, queue="")})
        assert e.value.field == "sink.queue", str(e.value)
