"""A training's progress, as suits where it goes: on a terminal, tqdm's bar (one line per
worker, redrawn); in a log (stderr not a terminal), one plain line per epoch when it ends,
since a bar's carriage returns fill a log with fragments (75 KB for one `dvc repro`).

Display only: no stage's output depends on it, so it is no code dep (`dvc_yaml`), and a
change here retrains nothing.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Self

from tqdm import tqdm


class EpochLine:
    """The part of tqdm's interface the fit loop uses; prints one line when the epoch ends."""

    def __init__(self, desc: str, total: int) -> None:
        self.desc, self.total, self.n, self.postfix = desc, total, 0, {}
        self.start = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        self.postfix = values

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            shown = ", ".join(f"{key}={value}" for key, value in self.postfix.items())
            seconds = time.monotonic() - self.start
            line = f"{self.desc}: {self.n}/{self.total} batches in {seconds:.0f} s, {shown}\n"
            # one write(2) of the whole line: print's two (text, then newline) let seeds
            # training side by side run their lines together in a shared log; a pipe keeps
            # a write of at most PIPE_BUF (4,096) bytes whole
            os.write(sys.stderr.fileno(), line.encode())


def epoch_bar(desc: str, total: int, line: int) -> tqdm | EpochLine:
    """A bar on terminal line `line` (one per worker), or in a log one line per epoch."""
    if not sys.stderr.isatty():
        return EpochLine(desc, total)
    return tqdm(total=total, desc=desc, unit="batch", mininterval=1, position=line, leave=line == 0)
