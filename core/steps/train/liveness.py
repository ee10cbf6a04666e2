"""Is a run's worker alive? Only the worker can answer: it holds an exclusive lock on RUN_DIR/worker.lock.

The launcher takes the lock before it starts the worker and hands the locked file to it (the child
inherits the open file, so there is no moment when a starting worker looks dead); the worker keeps it
open until it exits, and the kernel releases it when the process is gone, however it ended (crash,
SIGKILL, OOM killer). So "alive" never depends on clocks: psutil's computed start time can drift by a
minute when the wall clock steps, which made live runs look dead. The pid (for ending the process
tree) is checked against the process's command line, which must name the run folder.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from core.steps.train import files

ENV_FD = "CSAT_WORKER_LOCK_FD"


class Held(Exception):
    """Another process holds the run's lock."""


def held(run_dir: str | Path) -> bool:
    """True while some process holds the run's lock (a live worker)."""
    try:
        fd = os.open(Path(run_dir) / files.LOCK, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return True
        raise
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def acquire(run_dir: str | Path, wait_s: float = 0.0) -> int:
    """Take the run's lock; returns the open file descriptor that holds it. Raises Held."""
    fd = os.open(Path(run_dir) / files.LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    end = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(fd)
                raise
            if time.monotonic() >= end:  # a probe by held() takes it for microseconds only
                os.close(fd)
                raise Held(str(run_dir)) from None
            time.sleep(0.05)


PARENT = -1  # the lock is held by the process that launched this one (accelerate / torchrun)


def inherited(run_dir: str | Path) -> int | None:
    """The locked descriptor the launcher handed over, if it is this run's lock file; PARENT when the
    launcher handed it to a process launcher (whose children inherit the variable, not the file)."""
    raw = os.environ.pop(ENV_FD, None)
    if not raw or not raw.isdigit():
        return None
    fd = int(raw)
    try:
        mine, lock = os.fstat(fd), os.stat(Path(run_dir) / files.LOCK)
    except OSError:
        return PARENT
    if (mine.st_dev, mine.st_ino) != (lock.st_dev, lock.st_ino):
        return PARENT
    os.set_inheritable(fd, False)  # programs the worker runs must not keep the run "alive"
    return fd


def names_run(cmdline: list[str], run_dir: str | Path) -> bool:
    """Is this command line a worker of this run folder (and not a recycled pid)?"""
    return "core.steps.train.worker" in cmdline and str(Path(run_dir)) in cmdline
