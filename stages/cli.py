"""What every stage's command line shares: `--pipeline`, one-line errors, clean signals.

`@stage_main` turns SIGTERM (and the death of the `dvc` that started the stage) into a
normal exit, so every `atomic_path` cleans up its temporary file, and prints a fault as one
line: `error: invalid params: <key>: <reason>` (exit 2), `error: <message>` or
`error: <path>: <cause>` (exit 1), and Ctrl-C as one line too (exit 130).
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys
from collections.abc import Callable
from typing import Any

from mnist_budget.base.errors import StageError
from mnist_budget.base.signals import handle_signals
from mnist_budget.config.params import ParamsError


def pipeline_parser(description: str) -> argparse.ArgumentParser:
    """`--pipeline` picks the params file and the output folders (see `layout`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--pipeline", default="main", help="main (params.yaml) or a pipeline folder, e.g. references"
    )
    return parser


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
