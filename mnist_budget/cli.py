"""What every stage's command line shares: `--pipeline`, one-line errors, clean signals.

`@stage_main` turns SIGTERM (and the death of the `dvc` that started the stage) into a
normal exit, so every `atomic_path` cleans up its temporary file, and prints a fault as one
line: `error: invalid params: <key>: <reason>` (exit 2), `error: <message>` or
`error: <path>: <cause>` (exit 1), and Ctrl-C as one line too (exit 130).
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from mnist_budget.errors import StageError
from mnist_budget.params import ParamsError

PR_SET_PDEATHSIG = 1  # linux/prctl.h: the signal this process gets when its parent dies


def pipeline_parser(description: str) -> argparse.ArgumentParser:
    """`--pipeline` picks the params file and the output folders (see `layout`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--pipeline", default="main", help="main (params.yaml) or a pipeline folder, e.g. references"
    )
    return parser


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


def stage_main(main: Callable[..., None]) -> Callable[..., None]:
    """A stage's `main`, with clean signals and every known fault as one line."""

    @functools.wraps(main)
    def run(*args: Any) -> None:
        handle_signals()
        try:
            main(*args)
        except ParamsError as error:
            print(f"error: invalid params: {error}", file=sys.stderr)
            sys.exit(2)
        except StageError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)
        except OSError as error:
            where = f"{error.filename}: " if error.filename else ""
            print(f"error: {where}{error.strerror or error}", file=sys.stderr)
            sys.exit(1)
        except KeyboardInterrupt:
            print("error: stopped by Ctrl-C; the stage's last outputs are kept", file=sys.stderr)
            sys.exit(128 + signal.SIGINT)

    return run
