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
import os
import sys

from dvc.repo import Repo


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
    """Push the run records and the outputs they name: (records, objects pushed, objects
    not in the cache here, such as a pulled record's outputs never fetched)."""
    repo.stage_cache.push(remote)
    entries = run_entries(repo)
    named = set().union(*repo.stage_cache.get_used_objs(entries, remote=remote).values())
    result = repo.cloud.push(named, remote=remote)
    return len(entries), len(result.transferred), len(result.failed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--remote", help="a DVC remote (default: the default remote)")
    args = parser.parse_args()
    with Repo() as repo:
        records, pushed, absent = share_runs(repo, args.remote)
    print(
        f"share_runs: {records} run records; {pushed} objects pushed, {absent} not in the cache here",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
