"""How a stage's processes end: cleanly on SIGTERM and SIGHUP, with the `dvc` that started
them, and a training worker leaving Ctrl-C to its stage. Process wiring, no output depends on
it: no stage's code dep (`tools.dvc_yaml`)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Any

PR_SET_PDEATHSIG = 1  # linux/prctl.h: the signal this process gets when its parent dies


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds the stack: `finally` blocks remove temp files


def handle_worker_signals() -> None:
    """`handle_signals` for a training worker, which also ignores Ctrl-C: the terminal sends
    it to the whole process group, and the stage stops its workers and says so in one line."""
    handle_signals()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def die_with_parent() -> None:
    """Get SIGTERM when the parent dies: otherwise a stopped `dvc repro` leaves its stage
    running, orphaned. The parent is dvc itself because every dvc.yaml command starts with
    `exec` (dash, DVC's shell when $SHELL is unset, would otherwise stay in between). A stage
    asks for it first thing (stages/__init__.py), before seconds of imports; if the parent
    died before even that, the process has been handed to init (pid 1), and exits."""
    if sys.platform != "linux":
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:
        sys.exit(128 + signal.SIGTERM)


def handle_signals() -> None:
    """Exit cleanly on SIGTERM or SIGHUP, and die with the parent (`die_with_parent`)."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    die_with_parent()
