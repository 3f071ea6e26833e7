"""A usage sample that `mypy --strict` checks against the stubs (run-python-tests)."""

from __future__ import annotations

import datetime
import logging
from typing import List, Optional

from prometheus_client import CollectorRegistry

import auditbuf
from auditbuf.logging import AuditHandler
from auditbuf.prometheus import AuditbufCollector


def sink(batch: List[bytes]) -> Optional[auditbuf.Outcome]:
    return auditbuf.Outcome.DELIVERED if batch else None


def main() -> int:
    pipeline = auditbuf.Pipeline(
        sink=sink,
        service="gateway",
        queue_capacity=1000,
        flush_interval=datetime.timedelta(milliseconds=200),
        overflow="block",
        block_timeout=0.5,
        backing_store={"type": "memory", "params": {"max_events": 10_000}},
        config={"retry": {"max_elapsed_ms": 30_000}},
    )
    http = auditbuf.Pipeline(
        "http://127.0.0.1:9",
        headers={"X-Tenant": "blue"},
        timeout=2.5,
        format=None,
        exit_timeout=0.5,
    )
    http.close(timeout=0.1)
    amqp = auditbuf.Pipeline(
        config={"sink": {"type": "rabbitmq", "url": "amqp://127.0.0.1:9/%2f", "queue": "audit"}},
        exit_timeout=0.5,
    )
    amqp.close(timeout=0.1)
    with pipeline as audit:
        audit.record({"event_type": "user.login", "at": datetime.datetime.now(datetime.timezone.utc)})
        audit.record(b'{"event_type":"x"}')
        audit.record('{"event_type":"y"}')
        audit.record_event(
            event_type="gateway.signal.received",
            event_category="gateway",
            event_action="received",
            event_outcome="success",
            correlation_id="rr-1",
            duration_ms=12,
            is_sensitive=False,
            event_data={"signal_name": "OOMKilled"},
        )
        login: auditbuf.CadfEvent = {
            "action": "authenticate",
            "outcome": "success",
            "initiator": {"typeURI": "service/security/account/user", "id": "u-1", "name": "ada",
                          "addresses": [{"url": "10.0.0.7"}], "host": {"agent": "curl"}},
            "target": {"typeURI": "service/security/account/user", "id": "u-1"},
            "observer": {"typeURI": "service/identity", "id": "keystone-1"},
            "reason": {"reasonType": "HTTP", "reasonCode": "201"},
            "eventTime": datetime.datetime.now(datetime.timezone.utc),
            "attachments": [{"typeURI": "mime:application/json", "content": {"scope": "project"}},
                            {"name": "note", "typeURI": "xs:string", "content": "text"}],
            "requestPath": "/v3/auth/tokens",
        }
        audit.record_cadf(login)
        try:
            audit.record({"bad": {1, 2}})
        except auditbuf.SerializeError as e:
            code: int = e.code
            name: str = e.name
            print(code, name)
        except (auditbuf.Full, auditbuf.Timeout, auditbuf.Closed):
            pass
        report: auditbuf.Report = audit.flush(timeout=5.0)
        print(report.completed, report.left)
    stats: auditbuf.Stats = pipeline.stats()
    consistent: bool = stats.is_consistent()
    rejected: int = stats.rejected.total() + stats.dropped.total() + stats.redelivered
    letters: List[auditbuf.DeadLetter] = pipeline.dead_letters()
    error: Optional[str] = pipeline.last_error()
    registry = CollectorRegistry()
    registry.register(AuditbufCollector(pipeline))
    logging.getLogger("audit").addHandler(AuditHandler(pipeline, event_type="app.audit"))
    env = auditbuf.Pipeline.from_env("AUDIT", sink=sink)
    env.close()
    print(consistent, rejected, len(letters), error, pipeline.service)
    return 0 if consistent else 1


if __name__ == "__main__":
    raise SystemExit(main())
