"""What every stage's command line shares: `--pipeline`, one-line errors, clean signals.

`@stage_main` turns SIGTERM (and the death of the `dvc` that started the stage) into a
normal exit, so every `atomic_path` cleans up its temporary file, and prints a fault as one
line: `error: invalid params: <key>: <reason>` (exit 2), `error: <message>` or
`error: <path>: <cause>` (exit 1), and Ctrl-C as one line too (exit 130). A stage whose
outputs DVC removes before running it (a training: its run cache needs that) passes
`lost`, which names the command that puts the last ones back; the line ends with it.
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


def stage_main(
    main: Callable[..., None] | None = None, *, lost: Callable[..., str | None] | None = None
) -> Any:
    """A stage's `main`, with clean signals and every known fault as one line. `lost(*args)`:
    the command that puts back outputs found missing when the stage fails, else None."""
    if main is None:
        return functools.partial(stage_main, lost=lost)

    @functools.wraps(main)
    def run(*args: Any) -> None:
        def fail(message: str, code: int, kept: str = "") -> None:
            restore = lost(*args) if lost else None
            outputs = f"DVC removed the last outputs before the run: {restore}" if restore else kept
            print(f"error: {message}{f'; {outputs}' if outputs else ''}", file=sys.stderr)
            sys.exit(code)

        handle_signals()
        try:
            main(*args)
        except ParamsError as error:
            fail(f"invalid params: {error}", 2)
        except StageError as error:
            fail(str(error), 1)
        except OSError as error:
            where = f"{error.filename}: " if error.filename else ""
            fail(f"{where}{error.strerror or error}", 1)
        except KeyboardInterrupt:
            fail("stopped by Ctrl-C", 128 + signal.SIGINT, kept="the stage's last outputs are kept")

    return run
