"""How a stage's processes end: cleanly on SIGTERM and SIGHUP, with the `dvc` that started
them, and a training worker leaving Ctrl-C to its stage. Process wiring, no output depends on
it: no stage's code dep (`tools.dvc_yaml`)."""

from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import threading
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1  # linux/prctl.h: the signal this process gets when its parent dies


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds the stack: `finally` blocks remove temp files


def handle_worker_signals() -> None:
    """`handle_signals` for a training worker, which also ignores Ctrl-C: the terminal sends
    it to the whole process group, and the stage stops its workers and says so in one line."""
    handle_signals()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# What DVC may run a stage's command in ($SHELL, else /bin/sh): dash and fish fork the
# command rather than exec it, so the shell can stay between `dvc` and the stage
SHELLS = frozenset({"sh", "dash", "bash", "zsh", "fish", "ksh", "mksh", "busybox"})
_watched: list[int] = []  # the process this one dies with, once asked


def _parent_and_name(pid: int) -> tuple[int, str]:
    """/proc/<pid>/stat is `pid (comm) state ppid ...`; comm may hold spaces and parentheses."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1]), stat[stat.index("(") + 1 : stat.rindex(")")]


def starter() -> int:
    """The process that started this one, past any shell in between: `dvc`, for a stage."""
    pid = os.getppid()
    while pid > 1:
        try:
            parent, name = _parent_and_name(pid)
        except OSError:  # gone already: `die_with_parent` then finds it gone too
            break
        if name not in SHELLS:
            break
        pid = parent
    return pid


def _term_when_gone(pidfd: int) -> None:
    select.select([pidfd], [], [])  # readable once the process has exited
    os.kill(os.getpid(), signal.SIGTERM)


def die_with_parent() -> None:
    """Get SIGTERM when the process that started this one dies: otherwise a stopped `dvc
    repro` leaves its stage running, orphaned. The direct parent is watched by the kernel
    (PR_SET_PDEATHSIG); `dvc` past a shell that stayed in between, by a thread that waits on
    its pidfd. A stage asks for it first thing (stages/__init__.py), before seconds of
    imports; if the starter died before even that, the process exits. Linux only."""
    if sys.platform != "linux" or _watched:
        return
    pid = starter()
    _watched.append(pid)
    if pid == os.getppid():
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == 1:  # the parent died before the line above: handed to init
            sys.exit(128 + signal.SIGTERM)
        return
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        sys.exit(128 + signal.SIGTERM)
    threading.Thread(target=_term_when_gone, args=(pidfd,), daemon=True, name="die-with-dvc").start()


def handle_signals() -> None:
    """Exit cleanly on SIGTERM or SIGHUP, and die with the parent (`die_with_parent`)."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    die_with_parent()
