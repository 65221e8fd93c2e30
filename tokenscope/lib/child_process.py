"""A spawned child process set up as its parent is: same settings, Django ready.

Spawned, not forked: the parent runs an event loop, threads and open connections that a fork
would copy half-alive. Settings are copied from the parent at the time the pool starts (tests
change some at run time, such as the test database's name), so the child writes where its
parent would. The copy travels through the pool's pipe, in memory; nothing is written down.
"""

import ctypes
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def settings_snapshot() -> dict[str, Any]:
    """Every setting of this process, as the child is configured with it."""
    from django.conf import settings

    return {name: getattr(settings, name) for name in dir(settings) if name.isupper()}


def _exit_with_parent(parent_pid: int) -> None:
    """If the parent dies without closing the pool (killed, out of memory), the kernel kills
    this child too: nothing else would, and it would sit idle for ever holding a database
    connection (its end of the pool's pipe never closes). Linux only (prctl)."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)


def _child_init(snapshot: dict[str, Any], parent_pid: int) -> None:
    # The parent decides when to stop: Ctrl-C, and a service manager's SIGTERM, reach the whole
    # process group, and the parent still needs its child to write what is queued while it
    # shuts down (then it closes the pool, and the child exits).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _exit_with_parent(parent_pid)
    from django.conf import settings

    settings.configure(**snapshot)  # the parent's values, not a fresh read of the environment
    import django

    django.setup()


def django_process_pool() -> ProcessPoolExecutor:
    """One spawned child with Django set up like this process."""
    return ProcessPoolExecutor(
        max_workers=1,
        mp_context=get_context("spawn"),
        initializer=_child_init,
        initargs=(settings_snapshot(), os.getpid()),
    )
