"""Atomic file writes: a stage that fails, or is stopped, never leaves a half-written output
or a temporary file behind (with `cli.stage_main`, SIGTERM unwinds through `atomic_path`).

A stage with several outputs renders them all, then hands them to `write_all`: each is
written under a temporary name and only then are they renamed, with termination signals held
back and a failed rename undone, so a failure (a full disk, an immutable file, a signal)
replaces none of them and the last good outputs stay, `persist` in dvc.yaml keeping DVC
from deleting them before the stage runs. SIGKILL alone can land between two renames."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
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


def _share(path: str) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # mkstemp makes files private; outputs are shared


@contextmanager
def _signals_held() -> Iterator[None]:
    """SIGTERM, SIGINT and SIGHUP wait until the block ends (then they land as usual)."""
    held = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only on success."""
    path = Path(path)
    tmp = None
    try:
        with _signals_held():  # a signal between making the file and knowing its name would leak it
            # keep the suffix: some writers pick the format from it
            tmp = _temp_beside(path, f".tmp{path.suffix}")
        _share(tmp)
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as error:
        # a full disk or a read-only folder: name the output, not the temp file
        raise OSError(error.errno, error.strerror, str(path)) from error
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def check_writable(*paths: Path) -> None:
    """Fail now, not after minutes of training, if an output's folder cannot take a file."""
    for path in paths:
        os.remove(_temp_beside(Path(path), ".probe"))


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _swap_in(temps: dict[Path, str]) -> None:
    """Rename every temporary file onto its output; if one rename fails, put back what the
    renamed outputs held (each kept as a hard link until then) and raise naming the output."""
    kept: dict[Path, str | None] = {}  # output -> its previous bytes' link, None if it was new
    try:
        for path, tmp in temps.items():
            try:
                old = None
                if path.exists():
                    old = _temp_beside(path, ".old")
                    os.remove(old)
                    os.link(path, old)
                kept[path] = old
                os.replace(tmp, path)
            except OSError as error:
                raise OSError(error.errno, error.strerror, str(path)) from error
    except BaseException:
        for path, old in kept.items():
            if old is None:
                path.unlink(missing_ok=True)
            else:
                os.replace(old, path)
        raise
    finally:
        for old in kept.values():
            if old is not None and os.path.exists(old):
                os.remove(old)


def write_all(files: dict[Path, bytes], folders: tuple[Path, ...] = ()) -> None:
    """Replace every output, or none: with termination signals held back, each is written
    under a temporary name, then all are renamed, and a rename that fails (an immutable file)
    puts back those already renamed. Each of `folders` then holds only its files of `files`
    (what a previous run left there that this one did not write is removed)."""
    temps: dict[Path, str] = {}
    # held throughout (the outputs are small): a signal between making a temporary file and
    # recording its name would leak it, and one between two renames would mix old and new
    with _signals_held():
        try:
            for path, data in files.items():
                path = Path(path)
                if path.is_dir():  # os.replace would fail only after the others were renamed
                    raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
                temps[path] = _temp_beside(path, f".tmp{path.suffix}")
                _share(temps[path])
                try:
                    Path(temps[path]).write_bytes(data)
                except OSError as error:
                    raise OSError(error.errno, error.strerror, str(path)) from error
            _swap_in(temps)
        finally:
            for tmp in temps.values():
                if os.path.exists(tmp):
                    os.remove(tmp)
        written = {Path(path).resolve() for path in files}
        for folder in folders:
            for stale in Path(folder).glob("*"):
                if stale.is_file() and not stale.name.startswith(".") and stale.resolve() not in written:
                    stale.unlink()


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def json_bytes(value: Any) -> bytes:
    """`value` as the pipeline writes JSON: indented, one trailing newline."""
    return (json.dumps(value, indent=2) + "\n").encode()


def write_json(path: Path, value: Any) -> None:
    write_bytes(path, json_bytes(value))


def md5_of(path: Path) -> str:
    digest = hashlib.md5()  # DVC's hash: a name, not a defence against collisions
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)
