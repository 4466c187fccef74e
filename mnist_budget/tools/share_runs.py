"""Push every training run DVC's run cache holds, outputs and all, so that a teammate's
`dvc repro --pull` of any configuration this project ran restores it instead of training.

    python -m mnist_budget.tools.share_runs [--remote NAME]

`dvc push --run-cache` pushes the run records, but of the outputs only those the workspace
holds now (DVC 3.67: `repo.push` pushes `stage_cache.push`'s records and the workspace's
index): a record whose model files stay behind restores nothing. This pushes the records
through DVC, then every object the records name that the cache here holds (a run's history
and made_on.json too, which the run cache keeps beside git), through DVC's own transfer.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from dvc.exceptions import CollectCacheError
from dvc.repo import Repo
from dvc.stage.cache import RunCacheNotSupported


def run_entries(repo: Repo) -> list[tuple[str, str]]:
    """(key, value) of every run record in the local run cache."""
    root = repo.stage_cache.cache_dir
    if not os.path.isdir(root):
        return []
    return [
        (key, value)
        for prefix in sorted(os.listdir(root))
        for key in sorted(os.listdir(os.path.join(root, prefix)))
        for value in sorted(os.listdir(os.path.join(root, prefix, key)))
    ]


def share_runs(repo: Repo, remote: str | None = None) -> tuple[int, int, int]:
    """Push the run records, and the outputs of each record whose outputs this cache holds:
    (records, records whose outputs it lacks, objects pushed). A record can outlive its
    outputs here (a `dvc gc`, or one pulled from a remote and never run here)."""
    repo.stage_cache.push(remote)
    entries, named, lacking = run_entries(repo), set(), 0
    dvc_log = logging.getLogger("dvc")
    level = dvc_log.level
    dvc_log.setLevel(logging.ERROR)  # DVC warns of each missing folder listing: counted below instead
    try:
        for entry in entries:
            try:
                named.update(*repo.stage_cache.get_used_objs([entry], remote=remote).values())
            except CollectCacheError:  # a folder output whose listing is not here
                lacking += 1
    finally:
        dvc_log.setLevel(level)
    result = repo.cloud.push(named, remote=remote)
    return len(entries), lacking + bool(result.failed), len(result.transferred)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--remote", help="a DVC remote (default: the default remote)")
    args = parser.parse_args()
    try:
        with Repo() as repo:
            records, lacking, pushed = share_runs(repo, args.remote)
    except RunCacheNotSupported as error:  # no remote, or one that cannot hold runs
        sys.exit(f"error: share_runs: {error.__cause__ or error}")
    print(
        f"share_runs: {records} run records pushed, with {pushed} objects of their outputs; "
        f"{lacking} records' outputs are not in the cache here",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
