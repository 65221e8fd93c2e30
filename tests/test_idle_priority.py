"""Background work on idle cores only, until it falls behind (tokenscope/lib/idle_priority.py).

Each test runs the work on a thread of its own: scheduling policy and CPU affinity belong to a
thread on Linux, and the test runner's thread must keep its own.
"""

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tokenscope.lib.idle_priority import IdlePriority

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or len(os.sched_getaffinity(0)) < 2,
    reason="SCHED_IDLE and CPU affinity: Linux with two cores or more",
)


def _where() -> tuple[int, set[int]]:
    """The calling thread's scheduling policy and the cores it may run on."""
    return os.sched_getscheduler(0), os.sched_getaffinity(0)


def _on_a_thread(fn: Callable[[], Any]) -> Any:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(fn()))
    thread.start()
    thread.join(timeout=30)
    return result[0]


def test_work_that_keeps_up_runs_under_sched_idle_on_one_core():
    priority = IdlePriority(catch_up_seconds=5.0)
    policy, cpus = _on_a_thread(lambda: priority.run(_where, behind=False))
    assert policy == os.SCHED_IDLE
    assert cpus == {max(os.sched_getaffinity(0))}


def test_writers_of_different_parents_get_different_cores():
    allowed = sorted(os.sched_getaffinity(0))
    first = _on_a_thread(lambda: IdlePriority(5.0, spread=0).run(_where, behind=False))
    second = _on_a_thread(lambda: IdlePriority(5.0, spread=1).run(_where, behind=False))
    assert first[1] == {allowed[-1]}
    assert second[1] == {allowed[-2]}


def test_work_that_starts_behind_runs_at_normal_priority_on_every_core():
    priority = IdlePriority(catch_up_seconds=5.0)

    def twice() -> tuple[Any, Any]:
        priority.run(_where, behind=False)
        return priority.run(_where, behind=True)

    policy, cpus = _on_a_thread(twice)
    assert policy == os.SCHED_OTHER
    assert cpus == os.sched_getaffinity(0)


def test_work_that_runs_past_the_catch_up_time_is_put_back_to_normal_priority():
    priority = IdlePriority(catch_up_seconds=0.2)

    def slow() -> tuple[tuple[int, set[int]], tuple[int, set[int]]]:
        at_start = _where()
        deadline = time.monotonic() + 5
        while _where()[0] != os.SCHED_OTHER and time.monotonic() < deadline:
            time.sleep(0.01)
        return at_start, _where()

    at_start, later = _on_a_thread(lambda: priority.run(slow, behind=False))
    assert at_start[0] == os.SCHED_IDLE
    assert later == (os.SCHED_OTHER, os.sched_getaffinity(0))


def test_work_still_runs_when_the_switch_fails(monkeypatch):
    priority = IdlePriority(catch_up_seconds=5.0)
    _on_a_thread(lambda: priority.run(_where, behind=False))  # switched on

    def refuse(*_args: Any) -> None:
        raise PermissionError

    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    assert _on_a_thread(lambda: priority.run(lambda: "done", behind=False)) == "done"
    monkeypatch.undo()
    policy, _cpus = _on_a_thread(lambda: priority.run(_where, behind=False))
    assert policy == os.SCHED_OTHER  # and it no longer tries
