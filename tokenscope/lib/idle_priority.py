"""Background work that only takes a core nothing else wants, until it falls behind.

Under Linux's SCHED_IDLE policy a thread runs only when no normal thread wants the core, and a
normal thread that wakes up takes the core from it at once. The gateway's record writer runs
its batches so: on the 2-core machine its CPU (~0.8 ms per record) otherwise competes with the
gateway, the upstream and PostgreSQL, and every request waited for it (docs/performance.md).
It also keeps to one core while it does (the last allowed one, or another one picked by
`spread`, so that several writers are spread), which leaves the caches of the others to the
gateway: measured, that roughly halved what the writer added to the gateway's latency, where
the idle policy alone took off ~1 ms.

On a saturated machine an idle-class thread would get almost no CPU and records would pile up
in memory, so work never waits long: a batch that starts behind (its oldest item older than
`catch_up_seconds`) runs at normal priority, and a watchdog thread (normal priority itself)
puts a batch that has run longer than that back to normal priority.

Where the policy does not exist (not Linux) or cannot be left again, work runs at normal
priority as before. Leaving SCHED_IDLE needs root, CAP_SYS_NICE or an RLIMIT_NICE of 20 or more
(systemd `LimitNICE=20`, Docker `--ulimit nice=20`); an unprivileged process with the usual
limit of 0 may enter it but never leave it, so it is not entered at all. Which one applies is
logged once per process.
"""

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _set_policy(thread_id: int, policy: int) -> None:
    os.sched_setscheduler(thread_id, policy, os.sched_param(0))


def _policy_switchable() -> bool:
    """Whether this process may go to SCHED_IDLE and back (tried on a throwaway thread)."""
    if not hasattr(os, "SCHED_IDLE"):
        return False
    result: list[bool] = []

    def attempt() -> None:
        try:
            _set_policy(0, os.SCHED_IDLE)
            _set_policy(0, os.SCHED_OTHER)
            result.append(True)
        except OSError:
            result.append(False)

    probe = threading.Thread(target=attempt)
    probe.start()
    probe.join()
    return result == [True]


class IdlePriority:
    """Run work on the calling thread under SCHED_IDLE, on one core, unless it is behind (see
    module doc). `spread` picks the core among those allowed (e.g. the parent's pid)."""

    def __init__(self, catch_up_seconds: float, spread: int = 0) -> None:
        self.catch_up_seconds = catch_up_seconds
        self.spread = spread
        self._enabled: bool | None = None
        self._started: float | None = None  # monotonic start of the batch running, if any
        self._worker: int | None = None  # native id of the thread running batches
        self._all_cpus: set[int] = set()
        self._one_cpu: set[int] = set()

    def run(self, fn: Callable[[], T], *, behind: bool) -> T:
        if self._enabled is None:
            self._enabled = _policy_switchable()
            logger.info(
                "background work on idle cores: %s",
                "on" if self._enabled else "off (SCHED_IDLE unavailable or not leavable)",
            )
            if self._enabled:
                self._all_cpus = os.sched_getaffinity(0)
                cpus = sorted(self._all_cpus)
                self._one_cpu = {cpus[-1 - self.spread % len(cpus)]}
                watchdog = threading.Thread(target=self._watch, name="idle-watchdog", daemon=True)
                watchdog.start()  # created at normal priority, so it keeps it
        if not self._enabled:
            return fn()
        self._worker = threading.get_native_id()
        try:
            if behind:
                self._catch_up(0)
            else:
                os.sched_setaffinity(0, self._one_cpu)
                _set_policy(0, os.SCHED_IDLE)
        except OSError:  # e.g. the allowed cores changed under us: stop trying, work as usual
            logger.warning("background work on idle cores: off (could not switch)")
            self._enabled = False
            with contextlib.suppress(OSError):
                self._catch_up(0)
            return fn()
        self._started = time.monotonic()
        try:
            return fn()
        finally:
            self._started = None

    def _catch_up(self, thread_id: int) -> None:
        """Normal priority, every allowed core."""
        _set_policy(thread_id, os.SCHED_OTHER)
        os.sched_setaffinity(thread_id, self._all_cpus)

    def _watch(self) -> None:
        while True:
            time.sleep(self.catch_up_seconds / 4)
            started, worker = self._started, self._worker
            if (
                started is not None
                and worker is not None
                and time.monotonic() - started > self.catch_up_seconds
            ):
                try:
                    self._catch_up(worker)
                except OSError:  # the thread is gone, or its policy may no longer be changed
                    logger.warning("could not restore the background thread's priority")
                self._started = None  # once per batch
