"""The recipe search: successive halving over `dvc exp run --queue`, ranked on validation.

    python -m mnist_budget.tools.search [--jobs N]   # N: experiments at once (default cores / seeds)

Rung 1 queues one experiment per candidate of search/candidates.yaml (its changes over
search/params.yaml's recipe, passed as `-S` overrides, trained on `rung1_seeds` with
10,000 training images held out), the budgets taking turns, runs the queue with
`dvc queue start -j N` (one training per core) and ranks each budget's candidates by mean
validation accuracy (one seed cannot rank them: the first search's candidates spread about
one recipe's seed range). Rung 2 trains the best `keep` of each budget, and its `incumbent`
(today's recipe) whatever its rank, on `finalist_seeds`: every challenger meets it on the
same seeds. Every finished experiment is appended to reports/search/runs.csv as it arrives,
and reports/search/table.md is rewritten: the test accuracy is read and shown for finalists
only, after they were chosen (rung 1's waits in reports/search/rung1_tests.csv). Run it
again to resume: candidates already in runs.csv are not trained again. An incumbent that
an earlier search (`carried`: its record's folder) trained with the same config on the same
seeds is carried from that record, not trained again.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mnist_budget.base.atomic_files import atomic_path, write_text
from mnist_budget.base.errors import StageError
from mnist_budget.config.params import load_params, require
from mnist_budget.config.step_config import StepConfig, load_steps, load_target, merged
from mnist_budget.report.search_results import (
    RUN_COLUMNS,
    RUNG1_TESTS,
    RUNS,
    SEALED_COLUMNS,
    SEARCH,
    STEP,
    TABLE,
    adopted,
    adoption_state,
    against_reference,
    effects,
    finalists,
    pooled_std,
    ranked,
    read_plan,
    read_rung1_tests,
    read_runs,
    references_of,
    taught_budgets,
    teacher_line,
)
from mnist_budget.train.model_stats import count_params
from mnist_budget.train.nets import build_net

CANDIDATES = Path("search/candidates.yaml")
POLL_SECONDS = 30  # between looks at the finished experiments
REPORT_SECONDS = 300  # between progress lines when nothing finished


@dataclass(frozen=True)
class Candidate:
    name: str
    budget: str
    changes: dict[str, Any]  # step keys over the search recipe, as in params.yaml
    params: int


@dataclass(frozen=True)
class Plan:
    keep: int  # finalists per budget, besides its incumbent
    rung1_seeds: tuple[int, ...]
    finalist_seeds: tuple[int, ...]
    budgets: dict[str, int]  # name -> max params
    candidates: dict[str, Candidate]
    validation: int  # training images held out, ranked on
    incumbents: dict[str, str]  # budget -> the candidate that is today's recipe
    target: float  # the test accuracy a net must hold (search/params.yaml's target)
    # an earlier search's record (its folder) whose rows of the incumbents, trained with the
    # same config on the same seeds, this search takes instead of training them again
    carried: Path | None = None
    # budget -> the candidate its candidates each change one idea of (`references_of`): their
    # effects are measured against it, and none below it on rung 1 is a finalist
    references: dict[str, str] = field(default_factory=dict)
    taught: frozenset[str] = frozenset()  # budgets of nets taught by a teacher (`taught_budgets`)


def load_plan(path: Path = CANDIDATES, recipe: Path = SEARCH.params) -> Plan:
    """The candidates, each resolved over the search recipe, validated and counted now:
    a typo or a net over its budget stops here, before anything is queued."""
    plan = yaml.safe_load(path.read_text())
    params = load_params(recipe)
    budgets, candidates = {}, {}
    for budget, section in plan["budgets"].items():
        budgets[budget] = section["max_params"]
        for name, changes in section["candidates"].items():
            require(name not in candidates, f"{path}: {name}", "is listed twice")
            size = count_params(build_net(step_of(params, changes or {})))["params_total"]
            require(
                size <= budgets[budget],
                f"{path}: {budget}.{name}",
                f"has {size:,} params, over the {budget} budget of {budgets[budget]:,}",
            )
            candidates[name] = Candidate(name, budget, changes or {}, size)
    validation = load_steps(params)[STEP].validation
    require(
        validation > 0,
        f"{recipe}: recipe.validation",
        "must hold images out: the search ranks on them",
    )
    seeds = tuple(plan["rung1_seeds"]), tuple(plan["finalist_seeds"])
    require(not set(seeds[0]) & set(seeds[1]), f"{path}: finalist_seeds", "must not repeat rung1_seeds")
    incumbents = plan.get("incumbents") or {}
    for budget, name in incumbents.items():
        require(
            name in candidates and candidates[name].budget == budget,
            f"{path}: incumbents.{budget}",
            f"{name!r} is no candidate of the {budget} budget",
        )
    references = references_of(plan)
    for budget, name in references.items():
        require(name in candidates, f"{path}: {budget}.reference", f"{name!r} is no candidate")
    target = load_target(params).test_accuracy
    carried = Path(plan["carried"]) if plan.get("carried") else None
    require(
        carried is None or (carried / RUNS.name).is_file(),
        f"{path}: carried",
        f"{carried} holds no {RUNS.name}: name the folder of an earlier search's record",
    )
    taught = frozenset(taught_budgets(plan))
    return Plan(
        plan["keep"], *seeds, budgets, candidates, validation, incumbents, target, carried, references, taught
    )


def step_of(params: dict[str, Any], changes: dict[str, Any]) -> StepConfig:
    """The step a candidate trains: its changes over the search recipe of `params`."""
    entry = merged(params["steps"][STEP], changes)
    return load_steps({**params, "steps": {STEP: entry}})[STEP]


def carried_rows(plan: Plan) -> pd.DataFrame:
    """The incumbents' rows of the earlier record `plan.carried`: those trained there under
    the same name with the same config, on this plan's seeds (rung 1's, and the finalists'
    if it has them). A training is deterministic per seed, so these are the rows training it
    again would give. An incumbent of the same name but another config is an error."""
    if plan.carried is None:
        return pd.DataFrame(columns=RUN_COLUMNS)
    earlier = read_runs(plan.carried / RUNS.name)
    then, now = load_params(plan.carried / "params.yaml"), load_params(SEARCH.params)
    then_plan = read_plan(plan.carried)
    then_changes = {n: c or {} for b in then_plan["budgets"].values() for n, c in b["candidates"].items()}
    kept = []
    for budget, name in plan.incumbents.items():
        if name not in then_changes:
            continue
        require(
            step_of(then, then_changes[name]) == step_of(now, plan.candidates[name].changes),
            f"search/candidates.yaml: incumbents.{budget}",
            f"{name!r} trained with another config in {plan.carried}: rename it, or leave out `carried`",
        )
        rows = earlier[(earlier["candidate"] == name) & (earlier["budget"] == budget)]
        first = rows[(rows["rung"] == 1) & rows["seed"].isin(plan.rung1_seeds)]
        second = rows[(rows["rung"] == 2) & rows["seed"].isin(plan.finalist_seeds)]
        if set(first["seed"]) == set(plan.rung1_seeds):
            kept += [first, second] if set(second["seed"]) == set(plan.finalist_seeds) else [first]
    return pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(columns=RUN_COLUMNS)


def carry(plan: Plan) -> None:
    """Add the carried rows (`carried_rows`) not in runs.csv yet, with their test accuracy:
    an incumbent is a finalist whatever its rank, and the earlier search read it."""
    runs, carried = read_runs(), carried_rows(plan)
    new = carried[~carried["candidate"].isin(set(runs["candidate"]))]
    if new.empty:
        return
    write_runs(pd.concat([runs, new], ignore_index=True), plan)
    for name, group in new.groupby("candidate"):
        print(
            f"search: {name} carried from {plan.carried} (seeds {', '.join(map(str, sorted(group['seed'])))}: "
            "the same config)",
            file=sys.stderr,
        )


def turns(plan: Plan) -> list[str]:
    """The candidates in queue order, the budgets taking turns: every budget's table fills
    in as the search goes, and a search stopped early has ranked some of each."""
    by_budget = [[c.name for c in plan.candidates.values() if c.budget == b] for b in plan.budgets]
    return [name for round_ in zip_longest(*by_budget) for name in round_ if name]


def hydra_value(value: Any) -> str:
    """A params value in the override grammar of `dvc exp run -S` (Hydra's)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(hydra_value, value)) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def overrides(candidate: Candidate, seeds: tuple[int, ...]) -> list[str]:
    """`-S` arguments: the candidate's step keys, and its seeds."""
    where = f"{SEARCH.params}:"
    args = [f"{where}recipe.seeds={hydra_value(list(seeds))}"]
    for key, value in candidate.changes.items():
        args.append(f"{where}++steps.{STEP}.{key}={hydra_value(value)}")
    return [word for arg in args for word in ("-S", arg)]


def command(*args: str) -> str:
    """Run a command; its output, or a one-line error naming it."""
    done = subprocess.run(args, check=False, capture_output=True, text=True)
    if done.returncode:
        raise StageError(f"{' '.join(args[:4])} failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def dvc(*args: str) -> str:
    return command("dvc", *args)


def start_queue(jobs: int) -> None:
    """`dvc queue start -j jobs`. Its workers run on in the background holding whatever
    output it had: a pipe would keep us waiting until the queue is empty, so a file."""
    with tempfile.TemporaryFile("w+") as log:
        done = subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], check=False, stdout=log, stderr=log)
        if done.returncode:
            log.seek(0)
            raise StageError(f"dvc queue start failed: {log.read().strip()}")


def git(*args: str) -> str:
    return command("git", *args)


@dataclass(frozen=True)
class Finished:
    """What a finished experiment measured, per seed."""

    params: int
    val_accuracy: dict[int, float]
    test_accuracy: dict[int, float]
    # the last epoch's, on that epoch's augmented images as the live weights trained (not the
    # weight average that val_accuracy scores on clean images)
    train_accuracy: dict[int, float]


def experiment_refs() -> dict[str, str]:
    """Every finished experiment's name -> the git ref DVC commits it to
    (refs/exps/<baseline>/<name>): `dvc exp show` reads only the current commit's
    experiments, or with --all-commits takes minutes."""
    refs = git("for-each-ref", "refs/exps", "--format=%(refname)").split()
    # refs/exps/celery/ and exec/: DVC's queue and run bookkeeping, not experiments
    return {
        ref.rsplit("/", 1)[1]: ref
        for ref in refs
        if not ref.startswith(("refs/exps/celery/", "refs/exps/exec/"))
    }


def read_experiment(ref: str) -> Finished:
    """An experiment's metrics and history, read from its ref."""
    metrics = json.loads(git("show", f"{ref}:{SEARCH.metrics(STEP).as_posix()}"))
    history = pd.read_csv(io.StringIO(git("show", f"{ref}:{SEARCH.history(STEP).as_posix()}")))
    last = history.groupby("seed")["train_accuracy"].last()
    return Finished(
        metrics["params_total"],
        *(
            {int(seed): value for seed, value in metrics[key]["per_seed"].items()}
            for key in ("validation_accuracy", "test_accuracy")
        ),
        {int(seed): float(value) for seed, value in last.items()},
    )


# a name queued again after a killed run has several tasks, which `dvc queue status` lists
# by state (active ones, then failed, then succeeded), not by age: the liveliest one counts
LIVELIEST = ("Running", "Queued", "Success", "Failed")


def states_of(status: str) -> dict[str, str]:
    """Experiment name -> its liveliest task's state (Running, Queued, Success, Failed) in
    the text of `dvc queue status`: an old Failed task does not hide the new run."""
    states: dict[str, str] = {}
    for words in map(str.split, status.splitlines()[1:]):
        if len(words) > 3 and words[-1] in LIVELIEST:
            name, state = words[1], words[-1]
            if LIVELIEST.index(state) <= LIVELIEST.index(states.get(name, "Failed")):
                states[name] = state
    return states


def queue_states() -> dict[str, str]:
    return states_of(dvc("queue", "status"))


def experiment_name(candidate: str, rung: int) -> str:
    return f"{candidate}-r{rung}"


def write_runs(runs: pd.DataFrame, plan: Plan) -> None:
    """runs.csv, and the table from the same numbers: rows built with a blank test accuracy
    (None) leave an object column whose mean rounds unlike the file's floats read back."""
    runs = runs.sort_values(["budget", "candidate", "seed"], kind="stable")
    runs = runs.astype(dict.fromkeys(["train_accuracy", "val_accuracy", "test_accuracy"], float))
    with atomic_path(RUNS) as tmp:
        runs[RUN_COLUMNS].to_csv(tmp, index=False)
    write_text(TABLE, table(runs, plan))


def rows_of(candidate: Candidate, rung: int, measured: Finished) -> list[dict]:
    """One row per seed of an experiment, with its test accuracy."""
    return [
        {
            "budget": candidate.budget,
            "candidate": candidate.name,
            "rung": rung,
            "experiment": experiment_name(candidate.name, rung),
            "seed": seed,
            "params": measured.params,
            "train_accuracy": measured.train_accuracy[seed],
            "val_accuracy": measured.val_accuracy[seed],
            "test_accuracy": measured.test_accuracy[seed],
        }
        for seed in measured.val_accuracy
    ]


def seal(rows: list[dict]) -> list[dict]:
    """Rung 1's rows with their test accuracy moved to RUNG1_TESTS (kept, not shown: read
    into runs.csv for the finalists only, once chosen)."""
    sealed = pd.concat([read_rung1_tests(), pd.DataFrame(rows, columns=RUN_COLUMNS)[SEALED_COLUMNS]])
    sealed = sealed.drop_duplicates(["experiment", "seed"], keep="last").sort_values(["experiment", "seed"])
    with atomic_path(RUNG1_TESTS) as tmp:
        sealed.to_csv(tmp, index=False)
    return [{**row, "test_accuracy": None} for row in rows]


def queue(plan: Plan, names: list[str], rung: int, seeds: tuple[int, ...], jobs: int) -> None:
    """Queue the experiments of `names` not finished, queued or running yet, and start the queue."""
    finished, states = experiment_refs(), queue_states()
    for name in names:
        experiment = experiment_name(name, rung)
        if experiment not in finished and states.get(experiment) not in ("Queued", "Running"):
            print(f"search: queueing {experiment} (seeds {list(seeds)})", file=sys.stderr)
            dvc(
                "exp",
                "run",
                "--queue",
                f"{SEARCH.params.parent}/dvc.yaml",
                "-n",
                experiment,
                *overrides(plan.candidates[name], seeds),
            )
    start_queue(jobs)


def finishing(names: list[str], rung: int) -> Iterator[tuple[str, Finished]]:
    """Each of `names` with what its experiment measured, as it finishes, with a progress line
    when one finishes or every REPORT_SECONDS."""
    todo, started = list(names), time.monotonic()
    last_line = started
    while todo:
        count = len(todo)
        finished, states = experiment_refs(), queue_states()
        for name in list(todo):
            experiment = experiment_name(name, rung)
            if experiment in finished:
                todo.remove(name)
                yield name, read_experiment(finished[experiment])
            elif states.get(experiment) == "Failed":
                raise StageError(f"search: {experiment} failed; see `dvc queue logs {experiment}`")
        if todo:
            now = time.monotonic()
            if len(todo) < count or now - last_line >= REPORT_SECONDS:
                print(
                    f"search: rung {rung}: {len(todo)} to go after {(now - started) / 60:.0f} min",
                    file=sys.stderr,
                )
                last_line = now
            time.sleep(POLL_SECONDS)


def run_rung(plan: Plan, rung: int, names: list[str], seeds: tuple[int, ...], jobs: int) -> None:
    """Queue `names` (skipping those already in runs.csv), run the queue, and record each
    experiment as it finishes."""
    runs = read_runs()
    done = set(runs.loc[runs["rung"] == rung, "candidate"])
    todo = [name for name in names if name not in done]
    if not todo:
        return
    queue(plan, todo, rung, seeds, jobs)
    for name, measured in finishing(todo, rung):
        rows = rows_of(plan.candidates[name], rung, measured)
        rows = seal(rows) if rung == 1 else rows
        write_runs(pd.concat([read_runs(), pd.DataFrame(rows)], ignore_index=True), plan)
        scores = ", ".join(f"{row['val_accuracy']:.2%} (seed {row['seed']})" for row in rows)
        print(f"search: {experiment_name(name, rung)} done, validation {scores} -> {RUNS}", file=sys.stderr)


def seal_finished(plan: Plan) -> None:
    """Seal the test accuracy of rung-1 experiments recorded before RUNG1_TESTS kept it
    (from their `dvc exp` refs, while this checkout still has them)."""
    runs, finished = read_runs(), experiment_refs()
    known = set(read_rung1_tests()["experiment"])
    for experiment in set(runs.loc[runs["rung"] == 1, "experiment"]) - known:
        name = runs.loc[runs["experiment"] == experiment, "candidate"].iloc[0]
        if experiment in finished and name in plan.candidates:
            seal(rows_of(plan.candidates[name], 1, read_experiment(finished[experiment])))


def fill_train_accuracy(plan: Plan) -> None:
    """The training accuracy of experiments recorded before runs.csv kept it, from their
    `dvc exp` refs while this checkout still has them (blank for the others)."""
    runs, finished = read_runs(), experiment_refs()
    blank = set(runs.loc[runs["train_accuracy"].isna(), "experiment"]) & set(finished)
    for experiment in blank:
        train = read_experiment(finished[experiment]).train_accuracy
        rows = runs["experiment"] == experiment
        runs.loc[rows, "train_accuracy"] = runs.loc[rows, "seed"].map(train)
    if blank:
        write_runs(runs, plan)


def record_finalist_tests(plan: Plan, names: list[str], jobs: int) -> None:
    """The finalists' rung-1 test accuracy, read now that they are chosen: from RUNG1_TESTS,
    or for an experiment of before it whose ref is gone, by training it again (the same
    seeds, so the same validation accuracy: the log says whether it is)."""
    runs = read_runs()
    untested = [name for name in names if runs.loc[rung1(runs, name), "test_accuracy"].isna().any()]
    sealed = set(read_rung1_tests()["experiment"])
    lost = [name for name in untested if experiment_name(name, 1) not in sealed]
    if lost:
        print(
            f"search: {', '.join(lost)}: rung-1 test accuracy never kept and the experiments are gone "
            "(`dvc exp` refs are not in this checkout); training them again",
            file=sys.stderr,
        )
        for name in lost:  # each on the seeds it has in runs.csv
            queue(plan, [name], 1, tuple(runs.loc[rung1(runs, name), "seed"]), jobs)
        for name, measured in finishing(lost, 1):
            rows = pd.DataFrame(rows_of(plan.candidates[name], 1, measured)).set_index("seed")
            recorded = runs.loc[rung1(runs, name)].set_index("seed")["val_accuracy"]
            same = rows["val_accuracy"].reindex(recorded.index).equals(recorded)
            print(
                f"search: {experiment_name(name, 1)} again: validation accuracy {'the same as' if same else 'NOT the same as'} "
                f"recorded ({', '.join(f'{v:.2%}' for v in rows['val_accuracy'])})",
                file=sys.stderr,
            )
            seal(rows.reset_index().to_dict("records"))
    tests = read_rung1_tests().set_index(["experiment", "seed"])["test_accuracy"]
    for name in untested:
        mask = rung1(runs, name)
        runs.loc[mask, "test_accuracy"] = [
            tests[(experiment_name(name, 1), seed)] for seed in runs.loc[mask, "seed"]
        ]
    write_runs(runs, plan)


def rung1(runs: pd.DataFrame, name: str) -> pd.Series:
    return (runs["candidate"] == name) & (runs["rung"] == 1)


def changes_text(changes: dict[str, Any]) -> str:
    if not changes:
        return "(the recipe)"
    return "; ".join(f"`{key}: {json.dumps(value)}`" for key, value in changes.items())


def table(runs: pd.DataFrame, plan: Plan) -> str:
    """The search's table, per budget: validation mean and min over each candidate's
    seeds, best first; test accuracy for finalists only."""
    summary = ranked(runs)
    lines = [
        "# The recipe search",
        "",
        (
            f"Written by `python -m mnist_budget.tools.search` from {RUNS}. Every candidate trains on the "
            f"training images but {plan.validation:,} held out (stratified by label, the same for every "
            f"seed) and is ranked on those (validation); rung 1 is seeds {', '.join(map(str, plan.rung1_seeds))}, "
            f"the best {plan.keep} of each budget and its incumbent (today's recipe; finalists) add seeds {', '.join(map(str, plan.finalist_seeds))}. "
            "Test accuracy is read for finalists only, after they were chosen. Final-epoch accuracies. "
            "*n* is the seeds a row has; *std* their validation std. *train mean* is the last epoch's "
            "accuracy on its augmented training images as the live weights trained, where validation scores "
            "the weight average on clean images (blank where not kept). A candidate is *tied* with its "
            "budget's best when its validation mean is within two standard errors of the best's, from "
            "the seed std pooled over the budget's candidates (in each heading): the difference is "
            "within seed noise."
        ),
        "",
    ]
    if teacher := teacher_line():
        lines += [teacher, ""]
    if names := sorted(set(carried_rows(plan)["candidate"]) & set(runs["candidate"])):
        lines += [
            (
                f"Carried from {plan.carried} (trained there with the same config on the same seeds, "
                f"not again here): {', '.join(f'`{name}`' for name in names)}."
            ),
            "",
        ]
    choice = adopted(runs, plan.incumbents)
    for budget, group in summary.groupby("budget", sort=False):
        shown = pd.DataFrame(
            {
                "candidate": [f"`{name}`" for name in group["candidate"]],
                "changes over search/params.yaml": [
                    changes_text(plan.candidates[n].changes) if n in plan.candidates else ""
                    for n in group["candidate"]
                ],
                "params": group["params"].map("{:,}".format),
                "seeds": group["seeds"],
                "n": group["runs"],
                "train mean": group["train_mean"].map(lambda v: "" if pd.isna(v) else f"{v:.2%}"),
                "validation mean": group["val_mean"].map("{:.2%}".format),
                "std": group["val_std"].map(lambda v: "" if pd.isna(v) else f"{v * 100:.2f} pp"),
                "validation min": group["val_min"].map("{:.2%}".format),
                "versus the best": group["versus_best"],
                "test mean": [
                    f"{m:.2%}" if n else "" for m, n in zip(group["test_mean"], group["test_count"])
                ],
                "test min": [f"{m:.2%}" if n else "" for m, n in zip(group["test_min"], group["test_count"])],
            }
        )
        noise = pooled_std(group)
        spread = f"; pooled seed std {noise * 100:.2f} pp" if np.isfinite(noise) else ""
        lines += [
            f"## {budget} (at most {plan.budgets[budget]:,} params{spread})",
            "",
            shown.to_markdown(index=False),
            "",
            *choice_lines(runs, plan, group, choice),
        ]
    return "\n".join([*lines, *effects_section(runs, plan), smallest_holding(summary, plan), ""])


def choice_lines(
    runs: pd.DataFrame, plan: Plan, group: pd.DataFrame, choice: dict[str, tuple[str, str]]
) -> list[str]:
    """What the budget of `group` (its rows of `ranked`) has chosen (`search_results.adopted`),
    once every candidate of it has trained on rung 1 (a carried incumbent is scored before the
    rest have trained)."""
    budget = group["budget"].iloc[0]
    names = [c.name for c in plan.candidates.values() if c.budget == budget]
    pending = set(names) - set(runs.loc[runs["rung"] == 1, "candidate"])
    if pending:
        return [f"Rung 1 under way: {len(pending)} of its {len(names)} candidates to train.", ""]
    ours = set(runs.loc[runs["budget"] == budget, "candidate"])
    chosen = [name for name in finalists(runs, plan.keep, plan.incumbents, plan.references) if name in ours]
    unread = [name for name in chosen if runs.loc[runs["candidate"] == name, "test_accuracy"].isna().all()]
    if unread:  # its finalists are known; their test accuracy is read once the whole rung 1 is done
        return [
            f"Finalists: {', '.join(f'`{name}`' for name in chosen)}; rung 2 starts when rung 1 is done.",
            "",
        ]
    reference = plan.references.get(budget)
    if not chosen:  # a budget of its own (a teacher's) whose every candidate fell behind its net
        return [
            (
                f"No finalist: no candidate reached `{reference}`, the net they change, on rung 1's "
                "seeds; none trained on the finalists' seeds."
            ),
            "",
        ]
    if budget not in choice:
        return []
    state = adoption_state(runs, group)
    if budget in plan.taught:
        name = choice[budget][0]
        epochs = load_steps(load_params(SEARCH.params))[STEP].epochs
        return [
            (
                f"With a teacher ({'chosen' if state == 'Adopted' else state.lower()}; another exercise than "
                "the budget's, never adopted into "
                f"the progression): `{name}`, {plan.candidates[name].params:,} parameters, {epochs} epochs, "
                f"plus the teacher's cost (its training, and its forward pass on every training image of "
                f"every epoch); {choice[budget][1]}; against `{reference}` without a teacher, paired on "
                f"validation: {against_reference(runs, reference, name)}."
            ),
            "",
        ]
    return [f"{state}: `{choice[budget][0]}`, {choice[budget][1]}.", ""]


def effects_section(runs: pd.DataFrame, plan: Plan) -> list[str]:
    """Each idea's effect (`search_results.effects`): a candidate against the candidate of
    its budget's reference, on validation over their shared seeds."""
    found = effects(runs, plan.references)
    if found.empty:
        return []
    shown = pd.DataFrame(
        {
            "budget": found["budget"],
            "candidate": [f"`{name}`" for name in found["candidate"]],
            "against": [f"`{name}`" for name in found["reference"]],
            "seeds": found["seeds"],
            "effect on validation": [
                f"{e * 100:+.2f} ± {i * 100:.2f} pp" for e, i in zip(found["effect"], found["interval"])
            ],
            "call": found["call"],
        }
    )
    return [
        "## Each idea's effect",
        "",
        (
            "Each candidate's validation mean minus its reference's (the budget's incumbent, or the net "
            "it teaches) over the seeds both trained, ± two standard errors of that difference from the "
            "seed std pooled over every candidate of the search; *helps* or *hurts* beyond it, else "
            "*within noise*."
        ),
        "",
        shown.to_markdown(index=False),
        "",
    ]


def smallest_holding(summary: pd.DataFrame, plan: Plan) -> str:
    """The smallest finalist whose test mean over every seed (rung 1's and the finalists')
    holds the target (the search reads no other candidate's test accuracy); a net taught by
    the teacher is another exercise, named in a line of its own."""
    seeds = len(plan.rung1_seeds) + len(plan.finalist_seeds)
    holds = f"holds a {plan.target:.2%} test mean over {seeds} seeds"

    def smallest(rows: pd.DataFrame) -> str | None:
        done = rows[(rows["test_count"] == seeds) & (rows["test_mean"] >= plan.target)]
        if done.empty:
            return None
        best = done.sort_values(["params", "test_mean"], ascending=[True, False], kind="stable").iloc[0]
        return (
            f"`{best['candidate']}`, {best['params']:,} params, {best['test_mean']:.2%} "
            f"(min {best['test_min']:.2%})"
        )

    taught = summary["budget"].isin(plan.taught)
    own, theirs = smallest(summary[~taught]), smallest(summary[taught])
    lines = [f"Smallest net that {holds}: {own}." if own else f"No finalist {holds} yet."]
    if theirs:
        lines.append(f"With a teacher (another exercise): smallest net that {holds}: {theirs}.")
    return "\n\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="experiments run at once, each training its seeds side by side (default: cores / seeds)",
    )
    args = parser.parse_args()

    def jobs(seeds: tuple[int, ...]) -> int:
        # one training per core: an experiment's seeds already train side by side
        return args.jobs or max(1, (os.cpu_count() or 1) // len(seeds))

    try:
        plan = load_plan()
        load_steps(load_params(SEARCH.params))  # the search's own params, checked before queueing
        seal_finished(plan)
        fill_train_accuracy(plan)
        carry(plan)
        run_rung(plan, 1, turns(plan), plan.rung1_seeds, jobs(plan.rung1_seeds))
        chosen = finalists(read_runs(), plan.keep, plan.incumbents, plan.references)
        print(f"search: finalists {', '.join(chosen)}", file=sys.stderr)
        record_finalist_tests(plan, chosen, jobs(plan.rung1_seeds))
        run_rung(plan, 2, chosen, plan.finalist_seeds, jobs(plan.finalist_seeds))
        write_runs(read_runs(), plan)  # the table as this code writes it, even with nothing left to run
    except StageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"search: done -> {TABLE}", file=sys.stderr)


if __name__ == "__main__":
    main()
