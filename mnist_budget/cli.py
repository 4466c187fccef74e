"""What every stage's command line shares: `--pipeline` and one-line params errors."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import Any

from mnist_budget.params import ParamsError


def pipeline_parser(description: str) -> argparse.ArgumentParser:
    """`--pipeline` picks the params file and the output folders (see `layout`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--pipeline", default="main", help="main (params.yaml) or a pipeline folder, e.g. references"
    )
    return parser


def exit_on_params_error(main: Callable[..., None]) -> Callable[..., None]:
    """Print a ParamsError as one line and exit 2, instead of a traceback."""

    @functools.wraps(main)
    def run(*args: Any) -> None:
        try:
            main(*args)
        except ParamsError as error:
            print(f"error: invalid params: {error}", file=sys.stderr)
            sys.exit(2)

    return run
