"""What dvc.lock records, and the DVC cache checked against it: the trust boundary.

Git holds dvc.lock, and dvc.lock the md5 of every output. The DVC cache, and a remote it is
pulled from, hold bytes that anyone with write access may have changed; a model file is
unpickled by `torch.export.load`, which can run code. So a model is loaded only when its md5
is the one dvc.lock records: for a folder output, DVC records the md5 of a listing
(`<md5>.dir`, in the cache) that gives each file's md5. `python -m mnist_budget.base.dvc_lock`
checks every object of the cache against its name (an object's name is its md5), and every
cached output in the workspace against the md5 its lock records, and names an output that is
in neither (after a `dvc pull` that failed, say), with the remote's copy checked: a copy
that is not the lock's bytes is named a hash mismatch. With `--repair` it saves a good
workspace file back over its bad cache object, and removes a bad object or file that has
no good copy here, so that `dvc repro` rebuilds exactly those outputs (DVC restores an
output whose object is still good from its cache, and retrains one whose object is gone).

    python -m mnist_budget.base.dvc_lock [--repair]
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from mnist_budget.base.atomic_files import md5_of, write_bytes, write_text

DVC_DIR = Path(".dvc")
# what repairs a bad model file or cache object: removes it, and `dvc repro` rebuilds it alone
REPAIR = "repair: python -m mnist_budget.base.dvc_lock --repair, then dvc repro"


def cache_dir() -> Path:
    """The cache folder: `cache.dir` of .dvc/config.local or .dvc/config (relative to .dvc/),
    else .dvc/cache."""
    for name in ("config.local", "config"):
        config = configparser.ConfigParser()
        config.read(DVC_DIR / name)
        if config.has_option("cache", "dir"):
            return DVC_DIR / config.get("cache", "dir")
    return DVC_DIR / "cache"


def object_path(md5: str) -> Path:
    return cache_dir() / "files" / "md5" / md5[:2] / md5[2:]


def _stages(lock: Path) -> dict[str, dict]:
    """Each stage `lock` records, by name; empty when there is no lock."""
    if not lock.is_file():
        return {}
    with open(lock) as f:
        return (yaml.safe_load(f) or {}).get("stages", {})


def lock_outs(lock: Path) -> list[tuple[str, Path, str]]:
    """(stage, output path, md5) of every output `lock` records."""
    return [
        (stage, Path(out["path"]), out["md5"])
        for stage, body in _stages(lock).items()
        for out in body.get("outs", [])
    ]


def lock_stages(lock: Path) -> list[str]:
    """The names of the stages `lock` records."""
    return list(_stages(lock))


def forget_stages(lock: Path, names: set[str]) -> None:
    """Remove the entries of stages `names` from `lock`, every other line as it was (DVC
    keeps the entries of stages that no longer exist)."""
    kept, skipping = [], False
    for line in lock.read_text().splitlines(keepends=True):
        if line.startswith("  ") and not line.startswith("   "):  # a stage's first line
            skipping = line.strip().removesuffix(":") in names
        if not skipping:
            kept.append(line)
    write_text(lock, "".join(kept))


def recorded_files(lock: Path, stage: str, folder: Path) -> dict[Path, str]:
    """Each file of folder output `folder` of `stage` with the md5 `lock` records for it;
    empty when the lock records no such output or its listing is not in the cache."""
    for name, path, md5 in lock_outs(lock):
        if name == stage and path == folder and md5.endswith(".dir"):
            return listing(folder, md5)
    return {}


def listing(folder: Path, md5: str) -> dict[Path, str]:
    """The files of a folder output from its `<md5>.dir` object, {} if it is not cached."""
    try:
        entries = json.loads(object_path(md5).read_text())
    except (OSError, ValueError):
        return {}
    return {folder / entry["relpath"]: entry["md5"] for entry in entries}


def bad_objects() -> list[Path]:
    """Cache objects whose bytes are not the md5 their name says (.dir listings included)."""
    root = cache_dir() / "files" / "md5"
    objects = sorted(p for p in root.glob("*/*") if p.is_file()) if root.is_dir() else []
    bad = []
    for path in objects:
        name = path.parent.name + path.name
        if path.suffix == ".dir":  # named by the md5 of its entries' JSON as dvc-data writes it
            try:
                entries = [{"md5": e["md5"], "relpath": e["relpath"]} for e in json.loads(path.read_bytes())]
            except (ValueError, KeyError, TypeError):
                bad.append(path)
                continue
            text = json.dumps(sorted(entries, key=lambda e: e["relpath"]), sort_keys=True)
            if hashlib.md5(text.encode()).hexdigest() + ".dir" != name:
                bad.append(path)
        elif md5_of(path) != name:
            bad.append(path)
    return bad


def recorded_cached_files(locks: list[Path]) -> list[tuple[Path, str, Path, str]]:
    """(lock, stage, workspace file, md5) of every output file whose bytes DVC caches (a file
    of a folder output whose listing is cached, or a file output with its object in the
    cache; not a `cache: false` output, which git holds)."""
    found = []
    for lock in locks:
        for stage, path, md5 in lock_outs(lock):
            if md5.endswith(".dir"):
                found += [(lock, stage, file, file_md5) for file, file_md5 in listing(path, md5).items()]
            elif object_path(md5).is_file():
                found.append((lock, stage, path, md5))
    return found


@contextlib.contextmanager
def default_remote() -> Iterator[Any]:
    """DVC's object store of the default remote, read through DVC (so every kind of remote
    it reaches is checked the same way); None where no default remote is set."""
    from dvc.config import NoRemoteError
    from dvc.repo import Repo

    with Repo() as repo:
        try:
            remote = repo.cloud.get_remote_odb()
        except NoRemoteError:
            remote = None
        yield remote


def remote_copy_md5(remote: Any, md5: str) -> str | None:
    """The md5 of the bytes `remote` holds under object name `md5`; None where it holds none."""
    path = remote.oid_to_path(md5)
    if not remote.fs.exists(path):
        return None
    digest = hashlib.md5()
    with remote.fs.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def missing_cause(remote: Any, md5: str) -> str:
    if remote is None:
        return "no default remote to fetch it from"
    held = remote_copy_md5(remote, md5)
    if held is None:
        return f"the remote ({remote.path}) does not hold it"
    if held != md5:
        return f"the remote's copy is not those bytes: hash mismatch (md5 {held}, recorded {md5})"
    return "the remote holds it: `dvc pull` fetches it"


def save_back(file: Path, md5: str) -> None:
    """The cache object `md5` rewritten from workspace `file`, whose bytes are the lock's:
    read-only, as DVC keeps its objects."""
    target = object_path(md5)
    write_bytes(target, file.read_bytes())
    target.chmod(0o444)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repair", action="store_true", help="mend what is bad; then `dvc repro` rebuilds what is gone"
    )
    repair = parser.parse_args().repair
    bad = bad_objects()
    bad_md5s = {path.parent.name + path.name for path in bad}
    files = recorded_cached_files([Path("dvc.lock"), *sorted(Path().glob("*/dvc.lock"))])  # every pipeline
    for path in bad:
        print(f"bad cache object: {path} (its bytes are not the md5 its name says)")
    wrong = []  # (lock, stage, file): a workspace file that is not the lock's bytes
    good_copies = []  # (workspace file, md5): the lock's bytes, whose cache object is bad
    missing = []  # (lock, stage, file, md5): neither in the workspace nor, with good bytes, in the cache
    for lock, stage, file, md5 in files:
        if file.is_file():
            if md5_of(file) != md5:
                wrong.append((lock, stage, file))
                print(f"bad output: {file} of {stage} ({lock}): not the bytes the lock records")
            elif md5 in bad_md5s:
                good_copies.append((file, md5))
                print(
                    f"good output: {file} of {stage} ({lock}): the lock's bytes; --repair saves it back into the cache"
                )
        elif md5 in bad_md5s or not object_path(md5).is_file():
            missing.append((lock, stage, file, md5))
    if missing:
        with default_remote() as remote:
            for lock, stage, file, md5 in missing:
                cause = missing_cause(remote, md5)
                print(
                    f"missing output: {file} of {stage} ({lock}): not in the workspace or the cache; {cause}"
                )
    if not bad and not wrong and not missing:
        print(f"dvc_lock: the cache ({cache_dir()}) and every cached output match their md5s")
        return
    if not repair:
        sys.exit(
            "dvc_lock: `python -m mnist_budget.base.dvc_lock --repair` mends them, then `dvc repro` rebuilds what is gone"
        )
    for file, md5 in good_copies:
        save_back(file, md5)
    saved = {md5 for _, md5 in good_copies}
    removed = [path for path in bad if path.parent.name + path.name not in saved]
    for path in removed:
        path.unlink()
    for _, _, file in wrong:
        file.unlink(missing_ok=True)
    rebuilt = wrong + [(lock, stage, file) for lock, stage, file, _ in missing]
    stages = sorted(
        {f"{lock.parent / 'dvc.yaml'}:{stage}".removeprefix("dvc.yaml:") for lock, stage, _ in rebuilt}
    )
    print(
        f"dvc_lock: saved {len(good_copies)} good output(s) back into the cache, removed {len(removed)} bad "
        f"object(s) and {len(wrong)} output file(s)"
        + (f"; `dvc repro` rebuilds them ({', '.join(stages)})" if stages else "; nothing to rebuild")
    )


if __name__ == "__main__":
    main()
