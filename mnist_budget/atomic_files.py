"""Atomic file writes: a stage that fails, or is stopped, never leaves a half-written output
or a temporary file behind (with `cli.stage_main`, SIGTERM unwinds through `atomic_path`)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _temp_beside(path: Path, suffix: str) -> str:
    """A new empty file in `path`'s folder (made if missing); an error names that folder."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=suffix)
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(path.parent)) from error
    os.close(fd)
    return tmp


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only on success."""
    path = Path(path)
    # keep the suffix: some writers pick the format from it
    tmp = _temp_beside(path, f".tmp{path.suffix}")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private; outputs are shared
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as error:
        # a full disk or a read-only folder: name the output, not the temp file
        raise OSError(error.errno, error.strerror, str(path)) from error
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def check_writable(*paths: Path) -> None:
    """Fail now, not after minutes of training, if an output's folder cannot take a file."""
    for path in paths:
        os.remove(_temp_beside(Path(path), ".probe"))


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(value, indent=2) + "\n")


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)
