"""The tables of the README and docs/, rendered so that they cannot drift: the reference
tables from the vocabularies the code validates and builds with, the result tables from the
files the pipelines wrote (reports/headline.json, reports/ablation/effects.csv, the seed
systems' report). And the `artifacts:` section of dvc.yaml: the final and the tiny net's
models, described from reports/headline.json (`dvc artifacts get <repo> final`).

    python -m mnist_budget.tools.docs           # rewrite the tables between the documents' markers
    python -m mnist_budget.tools.docs --check   # exit 1 if a document differs from what it would write
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mnist_budget.base.atomic_files import read_json, write_text
from mnist_budget.base.layout import Layout
from mnist_budget.config.ablation_config import ARM_KEYS
from mnist_budget.config.layer_spec import HOLDS_LAYERS, LAYER_KINDS
from mnist_budget.config.optim_spec import OPTIMIZERS, SCHEDULES
from mnist_budget.config.params import REQUIRED, Key, load_params
from mnist_budget.config.step_config import AUGMENT, DISTILL, STEP_CHOICES, STEP_KEYS, load_target
from mnist_budget.report.ablation import (
    EFFECTS,
    arm_label,
    load_effects,
    row_interval,
    unmeasured_steps,
    unmeasured_text,
)
from mnist_budget.report.search_results import adopted, adoption_state, deciding_search, paired, ranked
from mnist_budget.report.seed_systems_report import claim_text
from mnist_budget.report.writeup import seeds_text

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAIN = Layout.of()
SEED_SYSTEMS_REPORT = Layout.of("seed-systems").reports / "report.md"
COMPARISON = "## Comparison with the write-ups"
# <!-- table:NAME --> ... <!-- /table:NAME -->
MARKED = re.compile(r"(<!-- table:(?P<name>[a-z-]+) -->\n).*?(<!-- /table:(?P=name) -->)", re.DOTALL)


def value_text(value: Any) -> str:
    """A default as it is written in params.yaml."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {value_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def keys_text(keys: dict[str, Key]) -> str:
    """`lr`, `momentum` (0), ...: each key with its default, if it has one."""
    parts = []
    for name, key in keys.items():
        default = "" if key.default is REQUIRED or key.default is None else f" ({value_text(key.default)})"
        doc = f" {key.doc}" if key.doc else ""
        parts.append(f"`{name}`{doc}{default}")
    return ", ".join(parts)


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def layers_table() -> str:
    rows = []
    for name, kind in LAYER_KINDS.items():
        written = "{residual: [<layer>, ...]}" if name == HOLDS_LAYERS else name + " C" * kind.width
        rows.append([f"`{written}`", kind.meaning, keys_text(kind.options)])
    return markdown(["layer", "meaning", "options (default)"], rows)


def step_keys_table() -> str:
    rows = []
    for name, key in STEP_KEYS.items():
        default = "required" if key.default is REQUIRED else value_text(key.default)
        choices = " / ".join(STEP_CHOICES.get(name, ()))
        rows.append([f"`{name}`", key.doc, default, choices])
    return markdown(["key", "meaning", "default", "choices"], rows)


def optimizers_table() -> str:
    rows = [[f"`{name}`", keys_text(keys)] for name, keys in OPTIMIZERS.items()]
    return markdown(["`name`", "keys (default)"], rows)


def schedules_table() -> str:
    rows = [[f"`{name}`", kind.doc, keys_text(kind.keys)] for name, kind in SCHEDULES.items()]
    return markdown(["`name`", "what it does", "keys (default)"], rows)


def keys_table(keys: dict[str, Key]) -> str:
    rows = [[f"`{name}`", key.doc, value_text(key.default)] for name, key in keys.items()]
    return markdown(["key", "meaning", "default"], rows)


def arm_keys_table() -> str:
    rows = [[f"`{name}`", key.doc] for name, key in ARM_KEYS.items()]
    return markdown(["key", "meaning"], rows)


def mark(ok: bool) -> str:
    return "✅" if ok else "❌"


def headline_table() -> str:
    """The final and the tiny net over their seeds, from reports/headline.json."""
    target = load_target(load_params(ROOT / MAIN.params))
    header = [
        "net", "step", "parameters", "epochs", "seeds", "mean", "min",
        f"every seed ≥ {target.test_accuracy:.2%}", "within budget",
    ]  # fmt: skip
    rows = []
    for net, h in read_json(ROOT / MAIN.headline).items():
        meets = read_json(ROOT / MAIN.metrics(h["step"]))["meets"]
        seeds = ", ".join(map(str, h["seeds"]))
        within = meets["params"] and meets["epochs"]
        rows.append([net, f"`{h['step']}`", f"{h['params_total']:,}", str(h["epochs"]), seeds])
        rows[-1] += [f"**{h['mean']:.2%}**", f"{h['min']:.2%}", mark(meets["every_seed"]), mark(within)]
    return markdown(header, rows)


NO_ABLATION = f"(no `{EFFECTS}` yet: `dvc repro ablation/dvc.yaml` writes it)"


def ablation_table() -> str:
    """One row per idea of the ablation, from reports/ablation/effects.csv."""
    if not (ROOT / EFFECTS).is_file():
        return NO_ABLATION
    effects = load_effects(ROOT / EFFECTS)
    rows = [
        [
            arm_label(row["change"], row["idea"]),
            f"`{row['step']}`" if row["step"] else "(none)",
            f"{row['arm_mean']:.2%}",
            row_interval(row),
            str(row["n"]),
            f"**{row['verdict']}**",
        ]
        for row in effects.to_dict("records")
    ]
    table = markdown(
        ["arm", "step", "mean", "effect against the final recipe (95% interval)", "seeds", "verdict"], rows
    )
    params = yaml.safe_load((ROOT / MAIN.params).read_text())
    caveat = unmeasured_text(unmeasured_steps(list(params["steps"]), params["headline"]["final"], effects))
    return table + (f"\n\n{caveat}" if caveat else "")


def ablation_summary() -> str:
    """Which ideas the ablation's evidence supports, in one paragraph."""
    if not (ROOT / EFFECTS).is_file():
        return NO_ABLATION
    effects = load_effects(ROOT / EFFECTS)
    said = [
        f"**{verdict}**: {', '.join(rows['idea'])}"
        for verdict, rows in effects.groupby("verdict", sort=False)
    ]
    return "The evidence, idea by idea: " + "; ".join(said) + "."


def report_table(path: Path, heading: str) -> pd.DataFrame:
    """The markdown table that follows `heading` in a report the pipeline wrote."""
    lines = (ROOT / path).read_text().splitlines()
    start = lines.index(heading) + 2
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append([cell.strip() for cell in line.strip("|").split("|")])
    return pd.DataFrame(table[2:], columns=table[0])


def seed_systems_table() -> str:
    """Each write-up's claimed final test accuracy against its reproduction over seeds."""
    comparison = report_table(SEED_SYSTEMS_REPORT, COMPARISON)
    # a claimed final trains over several seeds ("1, 2, 3"); a GPU-only step has none ("-")
    finals = comparison[
        comparison["seeds"].str.contains(",") & comparison["claim"].str.startswith("test accuracy")
    ]
    rows = [
        [row["system"], row["step"], row["claim"].removeprefix("test accuracy "), row["claimed"], row["reproduced"],
         row["seeds"], row["verdict"]]
        for row in finals.to_dict("records")
    ]  # fmt: skip
    return markdown(
        ["system", "claimed final", "read", "claimed", "reproduced (seed range)", "seeds", "verdict"], rows
    )


def seed_systems_counts() -> str:
    """How many of the write-ups' claims the reproduction matches, beats, falls short of."""
    verdicts = report_table(SEED_SYSTEMS_REPORT, COMPARISON)["verdict"]
    kinds = verdicts.str.replace(r" \(.*$|:.*$", "", regex=True).value_counts()
    return f"Over its {len(verdicts)} claims: " + ", ".join(f"{n} {kind}" for kind, n in kinds.items()) + "."


def search_choice() -> str:
    """The deciding search's finalists, the only candidates whose test accuracy was read,
    and what each budget adopted (reports/search/runs.csv)."""
    record = deciding_search()
    summary = ranked(record.runs)
    incumbents, taught = record.incumbents(), record.taught()
    chosen = adopted(record.runs, incumbents)
    rows = []
    for budget, group in summary[summary["test_count"] > 0].groupby("budget", sort=False):
        state, best = adoption_state(record.runs, group), group.iloc[0]["candidate"]
        # a net taught by a teacher is another exercise: the budget's best, never adopted
        if budget in taught:
            state = (
                "best with a teacher, reported apart" if state == "Adopted" else f"{state}, with a teacher"
            )
        for row in group.to_dict("records"):
            name = row["candidate"]
            choice = f"**{state.lower()}**" if chosen[budget][0] == name else ""
            versus = None if name == best else paired(record.runs, best, name)
            call = f"{'tied' if versus.tied else 'behind'}: {versus.text()}" if versus else "best"
            rows.append(
                [budget, f"`{name}`" + (" (incumbent)" if incumbents.get(budget) == name else ""),
                 f"{row['params']:,}", str(row["runs"]), f"{row['val_mean']:.2%}", call,
                 f"{row['test_mean']:.2%}", f"{row['test_min']:.2%}", choice]
            )  # fmt: skip
    header = [
        "budget", "finalist", "params", "seeds", "validation mean", "versus the best (validation, paired)",
        "test mean", "test min", "choice",
    ]  # fmt: skip
    return markdown(header, rows)


PUBLIC = Layout.of("public")


def source_link(source: str) -> str:
    """`owner/name path at <commit>` as a link to that file at that commit; a page as it is."""
    words = source.split()
    if len(words) == 4 and words[2] == "at":
        repo, path, commit = words[0], words[1], words[3]
        return f"[{repo}](https://github.com/{repo}/blob/{commit}/{path})"
    return source


def public_results_table() -> str:
    """Each published result (reports/public/systems.csv): its claim against its re-run over
    the seeds, then the project's final and tiny nets over the same seeds (reports/headline.json)."""
    header = [
        "net", "source", "parameters: claimed → counted", "epochs", "claim",
        "re-run, final epoch: mean (min)", "best epoch (chosen on test)", "claim as read", "at the final epoch",
    ]  # fmt: skip
    rows = []
    for row in pd.read_csv(ROOT / PUBLIC.reports / "systems.csv").to_dict("records"):
        claimed = "-" if pd.isna(row["params_claimed"]) else f"{int(row['params_claimed']):,}"
        rows.append(
            [
                f"`{row['step']}`",
                source_link(row["source"]),
                f"{claimed} → {row['params_counted']:,} ({row['counts']})",
            ]
        )
        rows[-1] += [str(row["epochs"]), claim_text(row)]
        if row["seeds"]:
            rows[-1] += [
                f"{row['final_mean']:.2%} ({row['final_min']:.2%}), {row['seeds']} seeds",
                f"{row['best_mean']:.2%}", row["verdict"], row["verdict_final"],
            ]  # fmt: skip
        else:
            rows[-1] += [f"not re-run: {row['epochs']} epochs x 8 seeds, configs only (GPU)", "-", "-", "-"]
    for net, h in read_json(ROOT / MAIN.headline).items():
        best = read_json(ROOT / MAIN.metrics(h["step"]))["best_test_accuracy"]
        rows.append(
            [
                f"`{h['step']}`",
                f"this project ({net})",
                f"{h['params_total']:,} (total)",
                str(h["epochs"]),
                "-",
            ]
        )
        rows[-1] += [f"{h['mean']:.2%} ({h['min']:.2%}), {len(h['seeds'])} seeds", f"{best:.2%}", "-", "-"]
    return markdown(header, rows)


def public_results_summary() -> str:
    """How many claims of the re-run published results hold, and the largest gap."""
    table = pd.read_csv(ROOT / PUBLIC.reports / "systems.csv")
    rerun = table[table["seeds"] > 0]
    holds = rerun["verdict"].str.startswith("✅").sum()
    holds_final = rerun["verdict_final"].str.startswith("✅").sum()
    gap = (rerun["final_mean"] - rerun["claimed"]).abs()
    worst = rerun.loc[gap.idxmax()] if len(rerun) else None
    said = (
        f"{len(table)} published results, {len(rerun)} re-run over {int(rerun['seeds'].max()) if len(rerun) else 0} seeds: "
        f"{holds} of {len(rerun)} claims hold read where the source read them, {holds_final} of {len(rerun)} at "
        "the final epoch"
    )
    below = rerun["final_mean"] < rerun["claimed"]
    if below.any():
        gaps = (rerun["claimed"] - rerun["final_mean"])[below] * 100
        said += (
            f"; {below.sum()} of {len(rerun)} re-runs' final means lie below their claims, "
            f"by {gaps.min():.2f} to {gaps.max():.2f} pp"
        )
    if worst is not None:
        said += (
            f"; the largest gap between a claim and its re-run's final mean: `{worst['step']}`, claimed "
            f"{worst['claimed']:.2%}, re-run {worst['final_mean']:.2%} "
            f"({(worst['final_mean'] - worst['claimed']) * 100:+.2f} pp)"
        )
    return said + "."


TABLES = {
    "layers": layers_table,
    "step-keys": step_keys_table,
    "optimizers": optimizers_table,
    "schedules": schedules_table,
    "augment": lambda: keys_table(AUGMENT),
    "distill": lambda: keys_table(DISTILL),
    "arm-keys": arm_keys_table,
    "headline": headline_table,
    "ablation": ablation_table,
    "ablation-summary": ablation_summary,
    "search-choice": search_choice,
    "seed-systems": seed_systems_table,
    "seed-systems-counts": seed_systems_counts,
    "public-results": public_results_table,
    "public-results-summary": public_results_summary,
}


# the last section of dvc.yaml, from its first line to the end of the file
ARTIFACTS = re.compile(r"^artifacts:\n.*", re.MULTILINE | re.DOTALL)


def artifacts(headline: dict[str, dict], models: Path = MAIN.models) -> dict[str, dict]:
    """The headline's nets as DVC artifacts: each step's model folder, one file per seed,
    with its step, parameters and final-epoch accuracy (reports/headline.json)."""
    return {
        net: {
            "path": f"{models.as_posix()}/{h['step']}",
            "type": "model",
            "desc": (
                f"The {net} net, {h['step']}: {h['params_total']:,} parameters, {h['epochs']} epochs, one "
                f"model file per seed ({seeds_text(h['seeds'])}); final-epoch test accuracy {h['mean']:.2%} "
                f"mean, {h['min']:.2%} lowest"
            ),
            "labels": [net],
            "meta": {
                "step": h["step"],
                "params": h["params_total"],
                "epochs": h["epochs"],
                "seeds": h["seeds"],
                "test_accuracy_mean": h["mean"],
                "test_accuracy_min": h["min"],
            },
        }
        for net, h in headline.items()
    }


def with_artifacts(dvc_yaml: str, headline: dict[str, dict]) -> str:
    """`dvc_yaml` ending in the `artifacts:` section of `headline`'s nets."""
    section = yaml.safe_dump(
        {"artifacts": artifacts(headline)}, sort_keys=False, width=110, default_flow_style=None
    )
    if ARTIFACTS.search(dvc_yaml):
        return ARTIFACTS.sub(lambda _: section, dvc_yaml)
    return f"{dvc_yaml}\n# `dvc artifacts get <repo> final`: written by `python -m mnist_budget.tools.docs`\n{section}"


def documents() -> list[Path]:
    """The README, then every page of docs/."""
    return [README, *sorted(DOCS.glob("*.md"))]


def rendered(text: str) -> str:
    """`text` with every marked table replaced by its rendering."""
    return MARKED.sub(lambda m: f"{m.group(1)}{TABLES[m.group('name')]()}\n{m.group(3)}", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether a document would change")
    check = parser.parse_args().check
    headline = read_json(ROOT / MAIN.headline)
    renders = {path: rendered for path in documents()}
    renders[ROOT / "dvc.yaml"] = lambda text: with_artifacts(text, headline)
    stale = []
    for path, render in renders.items():
        text = path.read_text()
        new = render(text)
        if new != text:
            stale.append(path.relative_to(ROOT))
            if not check:
                write_text(path, new)
    done = "out of date" if check else "rewritten"
    print(
        f"docs: tables {done}: {', '.join(map(str, stale))}" if stale else "docs: tables up to date",
        file=sys.stderr,
    )
    sys.exit(1 if check and stale else 0)


if __name__ == "__main__":
    main()
