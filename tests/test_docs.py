"""The README's and docs' tables are the vocabularies the code validates and builds with, and
the results the pipelines wrote; the steps they name exist."""

import json
import re

import pandas as pd
import yaml

from mnist_budget.config.params import load_params
from mnist_budget.tools import docs
from mnist_budget.train.nets import LAYER_KINDS, Layer, option_value


def test_every_table_is_rendered_from_what_it_shows():
    names = set()
    for path in docs.documents():
        text = path.read_text()
        names |= {m.group("name") for m in docs.MARKED.finditer(text)}
        assert docs.rendered(text) == text, (
            f"run `python -m mnist_budget.tools.docs` to rewrite {path.name}'s tables"
        )
    assert names == set(docs.TABLES)


def test_the_artifacts_are_the_headline_nets_as_dvc_reads_them():
    from dvc.repo import Repo

    headline = json.loads((docs.ROOT / "reports/headline.json").read_text())
    text = (docs.ROOT / "dvc.yaml").read_text()
    assert docs.with_artifacts(text, headline) == text, "run `python -m mnist_budget.tools.docs`"
    with Repo(docs.ROOT) as repo:
        read = repo.artifacts.read()["dvc.yaml"]
    assert set(read) == {"final", "tiny"}
    final = read["final"]
    assert final.type == "model" and final.path == f"models/{headline['final']['step']}"
    assert final.meta["test_accuracy_mean"] == headline["final"]["mean"]
    assert f"{headline['final']['mean']:.2%} mean" in final.desc


def test_a_layer_default_is_what_the_builder_uses():
    row = next(line for line in docs.layers_table().splitlines() if line.startswith("| `maxpool`"))
    assert "`k` kernel (2)" in row
    assert LAYER_KINDS["maxpool"].options["k"].default == 2
    assert option_value(Layer("maxpool"), "k") == 2


# what a step, arm or search candidate of these pipelines is called: `s6-weight-average`,
# `r1-big-kernels-adam-keras-plateau`, `steps7-7-rotate-steplr`, `starter-6m`, `s7-ema-r1`
STEP_LIKE = re.compile(
    r"(?<![\w-])(?:s\d+|r\d+|keras|models7|steps5|steps7|starter)-[a-z0-9]+(?:-[a-z0-9]+)*"
)


def known_names() -> set[str]:
    """Every step of every pipeline, and every candidate of the recipe search."""
    names = set()
    for path in [docs.ROOT / "params.yaml", *docs.ROOT.glob("*/params.yaml")]:
        params = load_params(path)
        names |= set(params["steps"]) | set(params.get("gpu_steps") or {})
    plan = yaml.safe_load((docs.ROOT / "search" / "candidates.yaml").read_text())
    for budget in plan["budgets"].values():
        names |= set(budget["candidates"])
    return names


def test_every_step_the_docs_name_exists():
    known = known_names()
    assert {"s6-weight-average", "no-batch-norm", "steps7-7-rotate-steplr", "candidate"} <= known
    for path in docs.documents():
        # a search experiment is its candidate's name and rung: `s7-ema-r1`
        named = {
            re.sub(r"-r\d+$", "", name) if name not in known else name
            for name in STEP_LIKE.findall(path.read_text())
        }
        assert named <= known, f"{path.name} names steps that no pipeline has: {sorted(named - known)}"


def test_the_documents_are_the_readme_and_docs_pages():
    paths = docs.documents()
    assert paths[0] == docs.README and {p.name for p in paths[1:]} >= {"params.md", "progression.md"}
    assert docs.markdown(["a", "b"], [["1", "2"]]) == "| a | b |\n|---|---|\n| 1 | 2 |"


def test_the_seed_systems_table_holds_each_claimed_final():
    params = load_params(docs.ROOT / "seed-systems" / "params.yaml")
    finals = {f"`{name}`" for name, entry in params["steps"].items() if len(entry.get("seeds", [1])) > 1}
    rows = docs.seed_systems_table().splitlines()[2:]
    assert len(finals) == 6
    assert {row.split(" | ")[1] for row in rows} == finals
    counts = re.fullmatch(r"Over its (\d+) claims: (.*)\.", docs.seed_systems_counts())
    assert sum(int(part.split()[0]) for part in counts[2].split(", ")) == int(counts[1]) > 100


def test_the_ablation_table_and_summary_say_what_effects_csv_holds(tmp_path, monkeypatch):
    monkeypatch.setattr(docs, "ROOT", tmp_path)
    params = {"steps": {"s1": {}, "s2-bn": {}, "s3-lr": {}}, "headline": {"final": "s3-lr"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert docs.ablation_table() == docs.NO_ABLATION  # before the ablation ran: says how to run it
    rows = [  # arm, idea, change, step, baseline, n, baseline_mean, arm_mean, effect, low, high, verdict
        "no-bn,batch norm,removes,s2-bn,full,8,0.9949,0.9947,-0.0002,-0.0015,0.0011,within noise at 8 seeds",
        "no-lr,OneCycle,removes,s3-lr,full,8,0.9949,0.9939,-0.001,-0.0014,-0.0006,helps",
        "drop,dropout,adds,,full,8,0.9949,0.9940,-0.0009,-0.0013,-0.0005,hurts",
    ]
    effects = tmp_path / docs.EFFECTS
    effects.parent.mkdir(parents=True)
    effects.write_text(
        "arm,idea,change,step,baseline,n,baseline_mean,arm_mean,effect,low,high,verdict\n" + "\n".join(rows)
    )
    table = docs.ablation_table().splitlines()
    assert (
        table[2]
        == "| without batch norm | `s2-bn` | 99.47% | -0.02 pp [-0.15, +0.11] | 8 | **within noise at 8 seeds** |"
    )
    assert table[3].startswith("| without OneCycle | `s3-lr` | 99.39% | -0.10 pp [-0.14, -0.06] |")
    assert table[4] == "| with dropout | (none) | 99.40% | -0.09 pp [-0.13, -0.05] | 8 | **hurts** |"
    assert len(table) == 5, "every step between the skeleton and the final one has its arm"
    params = {"steps": {"s1": {}, "s2-bn": {}, "s3-lr": {}, "s4-wide": {}, "s5-tiny": {}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**params, "headline": {"final": "s4-wide"}}))
    assert docs.ablation_table().splitlines()[5:] == [
        "",
        (
            "No arm measures `s4-wide`: this ablation ran on the final recipe before that step joined the "
            "progression, so its effects are those of an earlier final recipe (`dvc repro ablation/dvc.yaml` "
            "runs it on this one)."
        ),
    ]
    assert docs.ablation_summary() == (
        "The evidence, idea by idea: **within noise at 8 seeds**: batch norm; **helps**: OneCycle; **hurts**: dropout."
    )


def test_the_search_choice_says_adopted_only_once_every_finalist_has_its_seeds(tmp_path, monkeypatch):
    monkeypatch.setattr(docs, "ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)  # the search's record is read from the working directory
    (tmp_path / "search").mkdir()
    (tmp_path / "search/candidates.yaml").write_text("incumbents: {final: today}\nbudgets: {}\n")
    header = "budget,candidate,rung,experiment,seed,params,val_accuracy,test_accuracy\n"
    rung1 = [
        "final,new,1,new-r1,1,7000,0.995,0.996",
        "final,today,1,today-r1,1,7500,0.993,0.994",
        "final,other,1,other-r1,1,7900,0.990,",  # not a finalist: no test read
    ]
    runs = tmp_path / "reports/search/runs.csv"
    runs.parent.mkdir(parents=True)
    runs.write_text(header + "\n".join([*rung1, "final,new,2,new-r2,2,7000,0.995,0.995"]))
    table = docs.search_choice().splitlines()
    assert len(table) == 4, "the two finalists only"
    assert (
        table[2]
        == "| final | `new` | 7,000 | 2 | 99.50% | best | 99.55% | 99.50% | **leading while rung 2 runs (1 of 2 finalists on every seed)** |"
    )
    assert (
        table[3]
        == "| final | `today` (incumbent) | 7,500 | 1 | 99.30% | behind: -0.20 pp over 1 seed | 99.40% | 99.40% |  |"
    )
    runs.write_text(runs.read_text() + "\nfinal,today,2,today-r2,2,7500,0.993,0.993")
    assert docs.search_choice().splitlines()[2].endswith("| **adopted** |")
    # a budget of nets taught by a teacher: its best, never "adopted"
    (tmp_path / "search/candidates.yaml").write_text(
        "incumbents: {final: today}\nbudgets: {taught: {candidates: {t: {distill: {weight: 0.5}}}}}\n"
    )
    runs.write_text(
        runs.read_text() + "\ntaught,t,1,t-r1,1,7000,0.996,0.996\ntaught,t,2,t-r2,2,7000,0.996,0.996"
    )
    assert docs.search_choice().splitlines()[-1].endswith("| **best with a teacher, reported apart** |")


def test_the_public_results_table_has_a_row_per_source_and_the_projects_nets():
    table = docs.public_results_table().splitlines()
    systems = pd.read_csv(docs.ROOT / "reports/public/systems.csv")
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    assert [row[0] for row in rows] == [f"`{step}`" for step in systems["step"]] + [
        "`s7-separable`",
        "`s8-tiny`",
    ]
    for row, source in zip(rows, systems.to_dict("records")):
        repo, path, _, commit = source["source"].split()
        assert row[1] == f"[{repo}](https://github.com/{repo}/blob/{commit}/{path})"  # the file at its commit
        if source["seeds"]:
            assert row[5].startswith(f"{source['final_mean']:.2%} ({source['final_min']:.2%})")
        else:
            assert row[5].startswith("not re-run")
    assert rows[-2][1] == "this project (final)"
    summary = docs.public_results_summary()
    assert summary.startswith(
        f"{len(systems)} published results, {(systems['seeds'] > 0).sum()} re-run over 8 seeds"
    )
