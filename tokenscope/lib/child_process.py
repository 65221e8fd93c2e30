"""A spawned child process set up as its parent is: same settings, Django ready.

Spawned, not forked: the parent runs an event loop, threads and open connections that a fork
would copy half-alive. Settings are copied from the parent at the time the pool starts (tests
change some at run time, such as the test database's name), so the child writes where its
parent would. The copy travels through the pool's pipe, in memory; nothing is written down.
"""

import signal
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any


def settings_snapshot() -> dict[str, Any]:
    """Every setting of this process, as the child is configured with it."""
    from django.conf import settings

    return {name: getattr(settings, name) for name in dir(settings) if name.isupper()}


def _child_init(snapshot: dict[str, Any]) -> None:
    # The parent decides when to stop: Ctrl-C reaches the whole process group, and the parent
    # still needs its child to write what is queued while it shuts down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
        initargs=(settings_snapshot(),),
    )
