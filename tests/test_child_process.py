"""The record writer's child process (tokenscope/lib/child_process.py) never outlives its parent."""

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent

PARENT = """
import os, signal, django
django.setup()
from tokenscope.lib.child_process import django_process_pool
pool = django_process_pool()
print(pool.submit(os.getpid).result(timeout=120), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # dies without closing the pool
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_child_dies_with_a_parent_killed_without_closing_the_pool():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tokenscope.settings", "DEBUG": "1"}
    # Only the first line is read: an orphaned child would keep the pipes open for ever.
    with subprocess.Popen(
        [sys.executable, "-c", PARENT],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as parent:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert parent.wait(timeout=60) == -9
        try:
            deadline = time.monotonic() + 10
            while not _gone(child):
                assert time.monotonic() < deadline, f"writer process {child} outlived its parent"
                time.sleep(0.05)
        finally:
            if not _gone(child):
                os.kill(child, 9)
