"""Records audit events through a callable sink that prints them, then closes.
Run: python examples/python/example.py (after `pip install ./python`)."""

import auditbuf


def print_batch(batch: list[bytes]) -> None:
    # Called on the flush thread with each batch. Pass url="http://datastorage:8080"
    # instead of sink= to send events to a DataStorage service.
    for event in batch:
        print("sent:", event.decode())


with auditbuf.Pipeline(sink=print_batch, service="gateway") as audit:
    # A dict, encoded in Rust (no json.dumps); version and event_timestamp are filled in.
    audit.record({"event_type": "user.login", "user": "ada", "roles": ["admin"]})

    # The DataStorage shape, keyword arguments only.
    audit.record_event(
        event_type="gateway.signal.received",
        event_category="gateway",
        event_action="received",
        event_outcome="success",
        correlation_id="rr-2026-001",
        actor_type="service",
        actor_id="gateway",
        event_data={"signal_type": "alert", "signal_name": "HighMemoryUsage"},
    )

    # Bad input is refused with its own exception, and counted.
    try:
        audit.record(b"[1, 2]")
    except auditbuf.InvalidEvent as e:
        print("refused:", e.name, e.code)

stats = audit.stats()  # the with block closed the pipeline: everything is settled
print(f"delivered {stats.delivered}, rejected {stats.rejected.total()}")
assert stats.delivered == 2 and stats.is_consistent()
