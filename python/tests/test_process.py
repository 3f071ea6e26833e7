"""Process-level behaviour: fork, interpreter exit with events still queued, and Ctrl-C
during a blocking wait. Each runs in a child process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import auditbuf


def run(script: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


FORK_SCRIPT = """
import os, sys, time, json, auditbuf
from typing import List

def wait_child(pid, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return "hung"

seen: List[bytes] = []
p = auditbuf.Pipeline(sink=seen.extend, flush_interval=0.001)
p.record({"event_type": "before"})
p.flush()
read, write = os.pipe()
pid = os.fork()
if pid == 0:  # the child: report through the pipe, never return into the script
    code = 0
    try:
        try:
            p.record({"event_type": "child"})
            code = 1
        except auditbuf.Forked as e:
            if not (isinstance(e, auditbuf.Closed) and e.code == 13):
                code = 2
        started = time.monotonic()
        flushed = p.flush(timeout=10)
        closed = p.close(timeout=10)
        if time.monotonic() - started > 2 or flushed.completed or closed.completed:
            code = 3
        got: List[bytes] = []
        fresh = auditbuf.Pipeline(sink=got.extend)
        fresh.record({"event_type": "fresh"})
        if not fresh.close().completed or len(got) != 1:
            code = 4
        del p  # dropped in the child: returns at once
    except BaseException:
        code = 5
    finally:
        os.write(write, bytes([code]))
        os._exit(0)
os.close(write)
print("child", wait_child(pid), os.read(read, 1))
# The parent's pipeline is untouched.
p.record({"event_type": "after"})
stats = p.close().stats
print("parent", stats.delivered, stats.recorded, stats.rejected.closed, stats.is_consistent(),
      [json.loads(e)["event_type"] for e in seen])
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_child_gets_forked_and_never_hangs() -> None:
    # In a process of its own: CPython 3.11 can hang a fork() child in its own after-fork
    # code when another thread was making a thread state at that moment (a Python sink's
    # flush thread at its first batch, say), which other tests' pipelines may be doing in
    # this one.
    r = run(FORK_SCRIPT, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "child 0 b'\\x00'" in r.stdout, r.stdout
    assert "parent 2 2 0 True ['before', 'after']" in r.stdout, r.stdout


def test_a_fork_child_that_exits_normally_does_not_hang() -> None:
    r = run(
        """
        import os, auditbuf
        p = auditbuf.Pipeline(sink=lambda b: None, flush_interval=0.001)
        p.record({"event_type": "x"})
        pid = os.fork()
        if pid == 0:
            raise SystemExit(0)  # atexit runs: the inherited pipeline closes at once
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        """
    )
    assert r.returncode == 0, r.stderr
    assert "child 0" in r.stdout


THREAD_STATE_SCRIPT = """
import threading, weakref, auditbuf

local = threading.local()  # its data lives in the calling thread's Python thread state
class Marker:
    pass
refs = []
calls = []

def sink(batch):
    if not hasattr(local, "calls"):  # a thread state this sink has not seen yet
        local.calls = 0
        local.marker = Marker()
        refs.append(weakref.ref(local.marker))
    local.calls += 1
    calls.append((threading.get_ident(), local.calls))

p = auditbuf.Pipeline(sink=sink, flush_interval=60)
alive = []
for i in range(5):
    p.record({"event_type": "x", "i": i})
    assert p.flush(timeout=10).completed
    alive.append(refs[0]() is not None)
print("calls", [n for _, n in calls], "threads", len({t for t, _ in calls}), "alive", alive)
report = p.close(timeout=10)
assert report.completed
print("after close", refs[0]() is None)
consistent = report.stats.is_consistent() and report.stats.delivered == 5
for i in range(200):
    q = auditbuf.Pipeline(sink=sink, flush_interval=60)
    q.record({"event_type": "x"})
    closed = q.close(timeout=10)
    assert closed.completed
    consistent = consistent and closed.stats.is_consistent() and closed.stats.delivered == 1
print("states", len(refs), "left", sum(r() is not None for r in refs))
print("accounting", consistent)
"""


def test_a_python_sinks_flush_thread_keeps_one_thread_state() -> None:
    # A flush thread that made a thread state for each batch took CPython's HEAD_LOCK each
    # time without the GIL, and a fork() in that instant hung the child (3.11): it keeps
    # one for its whole life instead, so a threading.local() persists between batches...
    r = run(THREAD_STATE_SCRIPT)
    assert r.returncode == 0, r.stderr
    kept = "calls [1, 2, 3, 4, 5] threads 1 alive [True, True, True, True, True]"
    assert kept in r.stdout, r.stdout
    # ...and deletes it as it ends on close: pipelines made and closed one after another
    # leave no thread state (with its thread-local data) behind.
    assert "after close True" in r.stdout, r.stdout
    assert "states 201 left 0" in r.stdout, r.stdout
    assert "accounting True" in r.stdout, r.stdout


EXIT_SCRIPT = """
import sys, time, auditbuf
seen = []
def sink(batch):
    {body}
    seen.extend(batch)
    print("delivered", len(seen), flush=True)
p = auditbuf.Pipeline(sink=sink, flush_interval=10, exit_timeout={exit_timeout})
for i in range(300):  # under a batch: nothing is sent before exit
    p.record({{"event_type": "x", "i": i}})
print("exiting", flush=True)
"""


def test_exit_with_events_queued_delivers_them() -> None:
    r = run(EXIT_SCRIPT.format(body="pass", exit_timeout=5))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines() == ["exiting", "delivered 300"]
    assert r.stderr == ""


@pytest.mark.parametrize(
    "body",
    [
        "time.sleep(30)",  # a sink blocked outside the GIL
        "t = time.monotonic()\n    while time.monotonic() - t < 3: pass",  # busy in Python
    ],
)
def test_exit_with_a_stuck_sink_is_quick_and_clean(body: str) -> None:
    started = time.monotonic()
    r = run(EXIT_SCRIPT.format(body=body, exit_timeout=0.3))
    assert time.monotonic() - started < 15
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert "Fatal" not in r.stderr and "panicked" not in r.stderr, r.stderr
    assert "exiting" in r.stdout


def test_exit_with_events_queued_and_the_pipeline_collected_late() -> None:
    r = run(
        """
        import auditbuf
        class Holder:
            pass
        h = Holder()
        h.cycle = h  # collected only by the final GC, after atexit
        h.p = auditbuf.Pipeline(sink=lambda b: None, flush_interval=10)
        for i in range(100):
            h.p.record({"event_type": "x"})
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


# A shell starts a background job (`scripts/test &`) with SIGINT ignored, which the child
# inherits, and Python then installs no KeyboardInterrupt handler: the child installs it.
INTERRUPT_SCRIPT = """
import signal, time, auditbuf
signal.signal(signal.SIGINT, signal.default_int_handler)
p = auditbuf.Pipeline(sink=lambda b: time.sleep(60), queue_capacity=1, overflow="block",
                      flush_interval=0.001, exit_timeout=0.1)
p.record({{"event_type": "a"}})
time.sleep(0.2)
print("waiting", flush=True)
started = time.monotonic()
try:
    {call}
    print("returned", flush=True)
except KeyboardInterrupt:
    print("interrupted after %.2f s" % (time.monotonic() - started), flush=True)
    print("block_timeout", p.stats().rejected.block_timeout, flush=True)
"""


@pytest.mark.parametrize(
    "call",
    [
        'p.record({"event_type": "b"})',
        "p.flush(timeout=None)",
        "p.close(timeout=60)",
    ],
)
def test_ctrl_c_ends_a_blocking_wait_promptly(call: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(INTERRUPT_SCRIPT.format(call=call))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "waiting"
        time.sleep(0.2)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=20)
    finally:
        child.kill()
    lines = out.strip().splitlines()
    assert lines and lines[0].startswith("interrupted after"), (out, err)
    assert float(lines[0].split()[2]) < 2.0
    if call.startswith("p.record"):
        assert lines[1] == "block_timeout 1"
    assert child.returncode == 0, err
