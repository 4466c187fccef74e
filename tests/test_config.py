"""Params validation: every bad entry names the step, the key and the reason."""

import contextlib
import copy
import difflib
import itertools
import json
import os
import re
from pathlib import Path
from unittest.mock import ANY

import pytest
import yaml
from dvc.utils.hydra import apply_overrides

from mnist_budget.base.errors import StageError
from mnist_budget.config.ablation_config import Arm, load_ablation
from mnist_budget.config.layer_spec import ACTIVATION_NAMES, LAYER_KINDS
from mnist_budget.config.optim_spec import OPTIMIZERS, SCHEDULES, steered_by_test
from mnist_budget.config.params import ParamsError, load_params
from mnist_budget.config.report_config import check_report_params
from mnist_budget.config.step_config import (
    AUGMENT_ADDED,
    NOT_IDEAS,
    STEP_ADDED,
    STEP_KEYS,
    config_of,
    load_steps,
    load_target,
    load_teacher,
    parse_step,
    read_config,
    resolve,
)
from mnist_budget.report.search_results import adopted, deciding_search
from mnist_budget.train.nets import ACTIVATIONS, BUILDERS, build_net
from mnist_budget.train.optim import OPTIMIZER_FACTORIES, SCHEDULE_FACTORIES
from mnist_budget.train.runtime import worker_count
from tests.conftest import SMALL_STEP as VALID

REPO = Path(__file__).resolve().parents[1]


def entry(**changes):
    result = copy.deepcopy(VALID)
    result.update(changes)
    return result


def error_of(step_entry, name="s1") -> str:
    with pytest.raises(ParamsError) as info:
        build_net(parse_step(name, step_entry))
    return str(info.value)


def test_valid_entry_gets_defaults():
    step = parse_step("s1", entry())
    assert step.schedule == {"name": "none"}
    assert step.augment["rotate"] == 0.0 and step.augment["erase_size"] == 0.25
    assert step.bn is True and step.optimizer["nesterov"] is False
    assert [layer.kind for layer in step.layers] == ["conv", "maxpool", "conv", "gap", "conv"]
    assert step.layers[-1].opts == {"k": 1}


def test_repository_params_are_valid():
    params = load_params()
    steps = load_steps(params)
    # the progression ends on its final step, then the tiny one
    assert list(steps)[-2:] == [params["headline"]["final"], params["headline"]["tiny"]]
    assert load_target(params).test_accuracy == 0.994
    for step in steps.values():
        build_net(step)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"layers": ["conv 8", "pool 2"]},
            r"steps\.s1\.layers\[1\]: unknown layer 'pool'; valid: conv, sepconv",
        ),
        (
            {"optimizer": {"name": "sgd", "lr": -0.1}},
            r"steps\.s1\.optimizer\.lr: must be positive, got -0\.1",
        ),
        (
            {"optimizer": {"name": "sgd", "lr": "fast"}},
            r"steps\.s1\.optimizer\.lr: expected a number, got 'fast'",
        ),
        ({"epochs": "15"}, r"steps\.s1\.epochs: expected an integer, got '15'"),
        ({"epochs": 0}, r"steps\.s1\.epochs: must be at least 1"),
        ({"batch_size": True}, r"steps\.s1\.batch_size: expected an integer, got True"),
        ({"learning_rate": 0.1}, r"steps\.s1\.learning_rate: unknown key; valid keys: description, layers"),
        ({"dropout": 1.0}, r"steps\.s1\.dropout: must be in \[0, 1\)"),
        ({"precision": "fp16"}, r"steps\.s1\.precision: must be one of fp32, bf16"),
        ({"schedule": {"name": "warmup"}}, r"steps\.s1\.schedule\.name: unknown 'warmup'; valid: none, step"),
        ({"schedule": {"name": "step"}}, r"steps\.s1\.schedule\.step_size: missing required key"),
        ({"optimizer": {"name": "rmsprop", "lr": 0.1}}, r"steps\.s1\.optimizer\.name: unknown 'rmsprop'"),
        ({"augment": {"rotate": -5}}, r"steps\.s1\.augment\.rotate: must be >= 0"),
        ({"augment": {"flip": 1}}, r"steps\.s1\.augment\.flip: unknown key"),
        ({"augment": {"probability": 1.5}}, r"steps\.s1\.augment\.probability: is a probability, at most 1"),
        ({"validation": 60000}, r"steps\.s1\.validation: holds out 0 to 59999 of the 60,000 training images"),
        (
            {"schedule": {"name": "piecewise", "epochs": [0, 5], "lrs": [0.1]}},
            r"steps\.s1\.schedule\.lrs: needs one number per entry of `epochs`",
        ),
        (
            {"schedule": {"name": "piecewise", "epochs": [1, 5], "lrs": [0.1, 0.0]}},
            r"steps\.s1\.schedule\.epochs: must increase from 0",
        ),
        (
            {"layers": ["conv 8 drop=1.5", "gap", "conv 10 k=1"]},
            r"layers\[0\] \(conv\): drop must be in \[0, 1\)",
        ),
        ({"layers": ["conv 8 size=3"]}, r"layers\[0\] \(conv\): unknown option 'size'; valid: k, p, s"),
        ({"layers": ["conv"]}, r"layers\[0\] \(conv\): needs a width"),
        ({"layers": ["conv 8 k=three"]}, r"layers\[0\] \(conv\) k: expected an integer, got 'three'"),
        (
            {"layers": ["inception b1=4 b3=0", "gap"]},
            r"layers\[0\] \(inception\): branch width b3=0 must be at least 1",
        ),
        (
            {"layers": ["conv 8", "conv 8 k=30", "gap"]},
            r"layers\[1\] \(conv 8 k=30\): kernel 30 larger than its 26x26",
        ),
        (
            {"layers": ["conv 8", "maxpool k=40", "gap"]},
            r"layers\[1\] \(maxpool k=40\): kernel 40 larger than",
        ),
        (
            {"layers": ["conv 8 act=tanh"]},
            r"layers\[0\] \(conv\): unknown act 'tanh'; valid: relu, prelu, silu",
        ),
        ({"layers": ["conv 8", "gap"]}, r"steps\.s1\.layers: the net ends with 8 outputs; MNIST has 10"),
        ({"layers": ["conv 8", "conv 10 k=1"]}, r"the net ends with a 10x26x26 map; end with `gap`"),
        ({"layers": [{"residual": ["conv 8"]}, "gap"]}, r"layers\[0\] \(residual\): residual body maps"),
        ({"layers": [{"skip": ["conv 8"]}]}, r"layers\[0\]: a mapping layer must be \{residual"),
    ],
)
def test_bad_entries_name_step_and_key(changes, expected):
    message = error_of(entry(**changes))
    assert re.search(expected, message), message


def test_missing_required_key():
    bad = entry()
    del bad["epochs"]
    assert error_of(bad) == "steps.s1.epochs: missing required key"


@pytest.mark.parametrize("seeds", [[], [1, 1], [-1], [1.5], "1", [True]])
def test_seeds_are_distinct_non_negative_integers(seeds):
    assert error_of(entry(seeds=seeds)).startswith("steps.s1.seeds: expected")


def test_the_old_single_seed_key_says_what_replaced_it():
    assert error_of({**entry(), "seed": 1}) == "steps.s1.seed: is now `seeds`, a list: seeds: [1]"


@pytest.mark.parametrize("name", ["s1.bn", "my step", "a/b", "x@y", "-lead", "s3-größe"])
def test_step_names_dvc_cannot_use(name):
    assert error_of(entry(), name=name) == (
        f"steps.{name}: a step name may hold only ASCII letters, digits, '-' and '_', and start "
        "with a letter or digit (DVC uses it in stage names)"
    )


def test_a_step_name_too_long_for_a_file_name_is_refused_before_training():
    name = "s" * 240
    assert error_of(entry(), name=name) == (
        f"steps.{name}: a step name may be at most 100 characters long (240 here): it names files and folders"
    )


def test_load_steps_validates_every_step():
    params = {"recipe": {}, "steps": {"good": entry(), "bad": entry(epochs=-1)}}
    with pytest.raises(ParamsError, match=r"steps\.bad\.epochs"):
        load_steps(params)


def test_a_step_is_its_changes_deep_merged_over_the_recipe():
    recipe = {k: v for k, v in entry().items() if k not in ("description", "layers")}
    recipe["schedule"] = {"name": "onecycle", "max_lr": 0.1, "pct_start": 0.2}
    params = {
        "recipe": recipe,
        "steps": {
            "plain": {"description": "d", "layers": ["conv 8"]},
            "decay": {"description": "d", "layers": ["conv 8"], "optimizer": {"weight_decay": 0.001}},
            "adam": {"description": "d", "layers": ["conv 4"], "optimizer": {"name": "adam", "lr": 0.01}},
            "steplr": {"description": "d", "layers": ["conv 4"], "schedule": {"max_lr": 0.2}},
        },
    }
    steps = resolve(params)
    assert steps["plain"] == {**recipe, "description": "d", "layers": ["conv 8"]}
    # a mapping merges key by key...
    assert steps["decay"]["optimizer"] == {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.001}
    assert steps["steplr"]["schedule"] == {"name": "onecycle", "max_lr": 0.2, "pct_start": 0.2}
    # ...unless its name changes: another optimizer starts over
    assert steps["adam"]["optimizer"] == {"name": "adam", "lr": 0.01}
    assert recipe["optimizer"] == {"name": "sgd", "lr": 0.05, "momentum": 0.9}  # the recipe is untouched
    assert load_steps(params)["decay"].optimizer["weight_decay"] == 0.001


def test_a_step_that_is_not_a_mapping_is_named():
    with pytest.raises(ParamsError, match=r"^steps\.s2: expected a mapping, got 'oops'$"):
        resolve({"recipe": {}, "steps": {"s2": "oops"}})


def test_target_is_checked():
    with pytest.raises(ParamsError, match=r"target\.max_params: missing required key"):
        load_target({"target": {"test_accuracy": 0.994, "max_epochs": 15}})
    with pytest.raises(ParamsError, match=r"target\.test_accuracy: is a fraction"):
        load_target({"target": {"test_accuracy": 99.4, "max_params": 8000, "max_epochs": 15}})


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("steps:\n  s1: {bn: true}\n  s1: {bn: false}\n", "line 3: duplicate key 's1'"),
        (
            "recipe: &r {epochs: 1}\nsteps:\n  s1:\n    <<: *r\n",
            "line 4: YAML merge keys (<<) are not supported",
        ),
    ],
)
def test_params_yaml_that_dvc_would_read_otherwise_is_rejected(tmp_path, text, error):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=re.escape(f"{path}: {error}")):
        load_params(path)


def set_params(tmp_path: Path, path: str, overrides: list[str]) -> tuple[list[str], list[str]]:
    """The lines `dvc exp run -S` removes from and adds to a copy of the params file `path`."""
    copy = tmp_path / "params.yaml"
    original = (REPO / path).read_text()
    copy.write_text(original)
    apply_overrides(str(copy), overrides)
    changed = list(difflib.unified_diff(original.splitlines(), copy.read_text().splitlines(), n=0))
    removed = [line for line in changed if line.startswith("-") and not line.startswith("---")]
    added = [line for line in changed if line.startswith("+") and not line.startswith("+++")]
    return removed, added


def test_dvc_set_param_changes_one_line_of_the_ablation(tmp_path):
    removed, added = set_params(tmp_path, "ablation/params.yaml", ["steps.with-dropout.dropout=0.1"])
    assert (removed, added) == (["-    dropout: 0.05"], ["+    dropout: 0.1"])


@pytest.mark.parametrize("path", ["params.yaml", "references/params.yaml", "seed-systems/params.yaml"])
def test_dvc_set_param_changes_one_line_and_keeps_the_rest(tmp_path, path):
    """Each params file is laid out the way DVC writes it back, so `-S` edits only its value."""
    first_step = next(iter(load_params(REPO / path)["steps"]))
    overrides = ["recipe.device=cuda", f"++steps.{first_step}.label_smoothing=0.25"]
    removed, added = set_params(tmp_path, path, overrides)
    device = next(
        line for line in (REPO / path).read_text().splitlines() if line.startswith("  device: auto")
    )
    assert removed == [f"-{device}"]  # its comment, if any, stays
    assert added == [f"+{device.replace('device: auto', 'device: cuda')}", "+    label_smoothing: 0.25"]


def test_small_floats_that_dvc_exp_run_s_writes_are_numbers(tmp_path):
    """ruamel writes 1e-7 as `1e-07`, a float in YAML 1.2 and a string in PyYAML's 1.1."""
    path = tmp_path / "params.yaml"
    path.write_text("recipe:\n  optimizer: {name: sgd, lr: 0.01}\n  label_smoothing: 0.0\n")
    apply_overrides(str(path), ["recipe.optimizer.lr=1e-7", "recipe.label_smoothing=2.5e-3"])
    assert "lr: 1e-07" in path.read_text()
    recipe = load_params(path)["recipe"]
    assert recipe["optimizer"]["lr"] == 1e-7 and recipe["label_smoothing"] == 0.0025


def test_the_resolved_config_fills_every_default_and_holds_no_prose():
    config = config_of(parse_step("s1", entry()))
    assert "description" not in config and "threads" not in config
    # keys added since results were committed are written only where set (`STEP_ADDED`)
    assert list(config) == [key for key in STEP_KEYS if key not in ("description", *STEP_ADDED)]
    assert config["optimizer"] == {
        "name": "sgd",
        "lr": 0.05,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 0.0,
    }
    assert config["bn_order"] == "after_act" and config["schedule"] == {"name": "none"}
    assert config["augment"]["probability"] == 1.0 and config["seeds"] == [1]


def test_a_default_written_out_or_left_out_gives_the_same_config():
    spelled = entry(
        description="other words",
        layers=["conv 8 k=3 p=0 s=1", "maxpool k=2", "conv 16 k=3", "gap", "conv 10 k=1"],
        optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 0},
        schedule={"name": "none"},
        bn_order="after_act",
        augment={"rotate": 0, "probability": 1},
        label_smoothing=0,
    )
    assert config_of(parse_step("s1", spelled)) == config_of(parse_step("s1", entry()))
    onecycle = {"name": "onecycle", "max_lr": 0.1}
    full = {**onecycle, "pct_start": 0.3, "div_factor": 25, "final_div_factor": 10000, "anneal": "cos"}
    assert config_of(parse_step("s1", entry(schedule=full))) == config_of(
        parse_step("s1", entry(schedule=onecycle))
    )
    # a value that differs from its default shows
    assert (
        config_of(parse_step("s1", entry(layers=["conv 8 k=5", "gap", "conv 10 k=1"])))["layers"][0]
        == "conv 8 k=5"
    )


def test_an_augment_key_added_later_is_written_only_where_it_is_set():
    # every config written before `elastic` existed stays byte for byte what it was
    plain = config_of(parse_step("s1", entry(augment={"rotate": 5})))
    assert not set(AUGMENT_ADDED) & set(plain["augment"])
    assert (
        config_of(parse_step("s1", entry(augment={"rotate": 5, "elastic": 0, "elastic_sigma": 4}))) == plain
    )
    warped = config_of(parse_step("s1", entry(augment={"rotate": 5, "elastic": 8})))
    assert warped["augment"] == {**plain["augment"], "elastic": 8.0}
    assert read_config("s1", warped).augment["elastic_sigma"] == 4.0
    assert config_of(read_config("s1", warped)) == warped
    with pytest.raises(ValueError, match=r"steps.s1.augment.elastic_sigma: must be above 0"):
        parse_step("s1", entry(augment={"elastic": 8, "elastic_sigma": 0}))


def test_distillation_is_off_unless_set_and_needs_the_pipelines_teacher():
    plain = config_of(parse_step("s1", entry()))
    assert "distill" not in plain and config_of(parse_step("s1", entry(distill={}))) == plain
    student = parse_step("s1", entry(distill={"weight": 0.7}))
    assert config_of(student)["distill"] == {"weight": 0.7, "temperature": 4.0}
    assert config_of(read_config("s1", config_of(student))) == config_of(student)
    with pytest.raises(ParamsError, match=r"^steps.s1.distill.weight: is a share of the loss, in \(0, 1\]$"):
        parse_step("s1", entry(distill={"weight": 0}))
    params = {"recipe": entry(), "steps": {"s1": {"distill": {"weight": 0.5}}}}
    with pytest.raises(
        ParamsError, match=r"^steps.s1.distill: needs a teacher to learn from: a `teacher:` section"
    ):
        load_teacher(params, load_steps(params))
    teacher = load_teacher(
        {**params, "teacher": {"layers": ["conv 32", "gap", "conv 10 k=1"]}}, load_steps(params)
    )
    assert teacher.name == "teacher" and teacher.layers[0].width == 32 and teacher.seeds == (1,)
    with pytest.raises(ParamsError, match=r"^teacher.seeds: a teacher trains once: give it one seed$"):
        load_teacher({**params, "teacher": {"seeds": [1, 2]}}, load_steps(params))
    named = {"recipe": entry(), "steps": {"teacher": {}}, "teacher": {}}
    with pytest.raises(ParamsError, match=r"^steps.teacher: is the name of the pipeline's `teacher:`"):
        load_teacher(named, load_steps(named))


def test_a_config_file_reads_back_into_the_step_it_describes():
    step = parse_step(
        "s1", entry(layers=["conv 8 p=1 bn=false", {"residual": ["conv 8 p=1"]}, "gap", "conv 10 k=1"])
    )
    config = config_of(step)
    again = read_config("s1", config)
    assert config_of(again) == config
    assert build_net(again).state_dict().keys() == build_net(step).state_dict().keys()


@pytest.mark.parametrize(
    "pipeline",
    [
        "params.yaml",
        "references/params.yaml",
        "seed-systems/params.yaml",
        "search/params.yaml",
        "ablation/params.yaml",
        "public/params.yaml",
    ],
)
def test_every_committed_config_is_what_its_step_resolves_to(pipeline):
    """reports/configs/ holds what resolve writes from the committed params, and reads back."""
    params = load_params(REPO / pipeline)
    configs = REPO / "reports" / Path(pipeline).parent / "configs"
    if "progression" in params:
        with contextlib.chdir(REPO):  # its `progression` is a path from the repository root
            entries = load_ablation(params).entries
        steps = {name: parse_step(name, entry) for name, entry in entries.items()}
    else:
        steps = load_steps(params)
    for name, step in steps.items():
        committed = json.loads((configs / f"{name}.json").read_text())
        assert committed == config_of(step), f"{pipeline}: {name}: run dvc repro"
        assert config_of(read_config(name, committed)) == committed


def test_threads_is_no_step_key_but_mnist_threads(monkeypatch):
    assert "threads: is no longer a step key" in error_of(entry(threads=1))
    step = parse_step("s1", entry(seeds=[1, 2, 3]))
    monkeypatch.setenv("MNIST_THREADS", "2")
    assert worker_count(step) == 2
    monkeypatch.setenv("MNIST_THREADS", "0")
    assert worker_count(step) == min(3, os.cpu_count())
    for bad in ("two", "-1", "1.5"):
        monkeypatch.setenv("MNIST_THREADS", bad)
        with pytest.raises(StageError, match=re.escape(f"$MNIST_THREADS={bad!r}: expected how many seeds")):
            worker_count(step)


def test_every_vocabulary_name_has_its_builder():
    assert BUILDERS.keys() == LAYER_KINDS.keys()
    assert ACTIVATIONS.keys() == set(ACTIVATION_NAMES)
    assert OPTIMIZER_FACTORIES.keys() == OPTIMIZERS.keys()
    assert SCHEDULE_FACTORIES.keys() == SCHEDULES.keys()


def report_params(**changes):
    params = {"recipe": {}, "steps": {"s1": entry(), "s2": entry()}, "target": TARGET, **changes}
    check_report_params(params)


TARGET = {"test_accuracy": 0.994, "max_params": 8000, "max_epochs": 15}


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        (
            {"headline": {"final": "s1", "tiny": "s3-tiny"}},
            "headline.tiny: 's3-tiny' is not a step in `steps` (s1, s2)",
        ),
        ({"headline": {"final": "s1"}}, "headline.tiny: missing required key"),
        ({"target": {**TARGET, "max_params": "8k"}}, "target.max_params: expected an integer"),
        ({"without": {"the pool": ["conv 8", "pool"]}}, "without.the pool[1]: unknown layer 'pool'"),
        ({"without": {"the pool": []}}, "without.the pool: expected a list of layers"),
    ],
)
def test_what_the_reports_read_is_checked_before_training(changes, error):
    with pytest.raises(ParamsError, match=re.escape(error)):
        report_params(**changes)
    report_params(headline={"final": "s1", "tiny": "s2"})


def top_level_changes(before: dict, after: dict) -> list[str]:
    """The resolved config's top-level keys whose values differ, but for the seeds that
    measure it (a resolved config holds no description)."""
    return [key for key in after if key not in NOT_IDEAS and before.get(key) != after[key]]


def test_each_step_of_the_progression_is_its_one_idea():
    """Each entry after the first holds one step key besides its description (the first:
    none, the recipe is the skeleton's), and it changes the step before it. The tiny step,
    half the budget, is not an idea of the progression but the search's choice for that
    budget: it holds the keys that choice changed over the final recipe (the search's own,
    tests/test_search.py checks their values), a net and what it trains with."""
    params = load_params(REPO / "params.yaml")
    assert params["steps_build_on"] == "previous"
    entries = {
        name: {k: v for k, v in e.items() if k not in NOT_IDEAS} for name, e in params["steps"].items()
    }
    names = list(entries)
    assert 6 <= len(names) <= 8 and entries[names[0]] == {}
    configs = {name: config_of(step) for name, step in load_steps(params).items()}
    with contextlib.chdir(REPO):
        record = deciding_search()
        chosen = adopted(record.runs, record.incumbents())["tiny"][0]
        plan = yaml.safe_load((record.plans / "candidates.yaml").read_text())
    tiny = params["headline"]["tiny"]
    assert names[-1] == tiny
    for previous, name in itertools.pairwise(names):
        if name == tiny:
            assert sorted(entries[name]) == sorted(plan["budgets"]["tiny"]["candidates"][chosen])
        else:
            assert len(entries[name]) == 1, f"{name} holds {sorted(entries[name])}: one idea per step"
        assert top_level_changes(configs[previous], configs[name]) == list(entries[name])


def test_a_step_builds_on_the_step_before_when_the_params_say_so():
    steps = {
        "a": {"description": "first", "layers": ["conv 8"]},
        "b": {"description": "second", "optimizer": {"weight_decay": 0.001}},
        "c": {"epochs": 2},
    }
    recipe = {k: v for k, v in entry().items() if k not in ("description", "layers")}
    chained = resolve({"recipe": recipe, "steps_build_on": "previous", "steps": steps})
    assert chained["c"]["layers"] == ["conv 8"] and chained["c"]["optimizer"]["weight_decay"] == 0.001
    assert "description" not in chained["c"]  # a description is a step's own: c must say why it exists
    with pytest.raises(ParamsError, match=r"^steps\.c\.description: missing required key$"):
        load_steps({"recipe": recipe, "steps_build_on": "previous", "steps": steps})
    alone = resolve({"recipe": recipe, "steps": steps})
    assert "layers" not in alone["c"] and alone["b"]["optimizer"] == {
        **recipe["optimizer"],
        "weight_decay": 0.001,
    }
    with pytest.raises(ParamsError, match=r"^steps_build_on: must be one of recipe, previous$"):
        resolve({"recipe": recipe, "steps_build_on": "last", "steps": steps})


def committed_ablation() -> tuple[dict, dict, dict[str, dict]]:
    """The main progression's configs, and the ablation's arms and configs."""
    main = {name: config_of(step) for name, step in load_steps(load_params(REPO / "params.yaml")).items()}
    with contextlib.chdir(REPO):
        ablation = load_ablation(load_params(REPO / "ablation/params.yaml"))
    configs = {name: config_of(parse_step(name, entry)) for name, entry in ablation.entries.items()}
    return main, ablation, configs


def test_the_headline_nets_and_the_ablation_train_8_seeds_or_more_and_the_baseline_once():
    """One number per recipe: the final and tiny nets over 8 seeds or more, the ablation's
    arms on the final net's seeds, its baseline that net's own history (no second training)."""
    params = load_params(REPO / "params.yaml")
    main, ablation, configs = committed_ablation()
    for role in ("final", "tiny"):
        assert len(main[params["headline"][role]]["seeds"]) >= 8, role
    final = main[params["headline"]["final"]]
    assert ablation.final == params["headline"]["final"] and ablation.seeds == final["seeds"]
    assert ablation.baseline not in configs
    assert all(arm["seeds"] == final["seeds"] for arm in configs.values()), "every arm on the same seeds"


def test_each_ablation_arm_takes_out_exactly_the_idea_its_step_adds():
    main, ablation, configs = committed_ablation()
    baseline, names = main[ablation.final], list(main)
    for name, arm in ablation.arms.items():
        changed = top_level_changes(baseline, configs[name])
        assert len(changed) == 1, f"arm {name} changes {changed}: one idea per arm"
        if arm.removes:
            step = names.index(arm.step)
            assert top_level_changes(main[names[step - 1]], main[names[step]]) == changed
            # taken out = as it was before the step added it
            assert configs[name][changed[0]] == main[names[step - 1]][changed[0]]
    # every idea between the skeleton and the final step has its arm
    final = names.index(load_params(REPO / "params.yaml")["headline"]["final"])
    assert {arm.step for arm in ablation.arms.values() if arm.removes} == set(names[1 : final + 1])


def write_ablation(folder: Path, **arms: dict) -> dict:
    """A progression of three steps (s3 after the final one) in `folder`/params.yaml, and
    ablation params drawn from it with `arms` besides the baseline."""
    recipe = {k: v for k, v in entry().items() if k not in ("description",)}
    main = {
        "recipe": recipe,
        "steps_build_on": "previous",
        "steps": {
            "s1": {"description": "d"},
            "s2": {"description": "d", "optimizer": {"weight_decay": 0.001}},
            "s3": {"description": "d", "epochs": 2},
        },
        "headline": {"final": "s2", "tiny": "s3"},
    }
    main["steps"]["s2"]["seeds"] = [1, 2]  # the final step: the ablation's seeds
    (folder / "params.yaml").write_text(yaml.safe_dump(main))
    return {"progression": str(folder / "params.yaml"), "baseline": "full", "steps": arms}


def test_an_arm_is_the_final_step_with_its_step_reverted_or_an_idea_added(tmp_path):
    params = write_ablation(
        tmp_path,
        **{"no-decay": {"removes": "decay", "step": "s2"}, "drop": {"adds": "dropout", "dropout": 0.1}},
    )
    ablation = load_ablation(params)
    assert (ablation.baseline, ablation.final, ablation.seeds) == ("full", "s2", [1, 2])
    assert "full" not in ablation.entries  # read from the main pipeline's s2, never trained twice
    full = {**resolve(load_params(tmp_path / "params.yaml"))["s2"], "description": ANY}
    no_decay, drop = (ablation.entries[name] for name in ("no-decay", "drop"))
    assert full["optimizer"]["weight_decay"] == 0.001 and full["seeds"] == [1, 2] and "s3" not in str(full)
    assert no_decay == {**full, "optimizer": {**full["optimizer"], "weight_decay": 0.0}, "description": ANY}
    assert drop == {**full, "dropout": 0.1, "description": "The final step with dropout (dropout: 0.1)."}
    assert no_decay["description"] == "The final step without decay: s2's optimizer as in s1."
    assert ablation.arms == {"no-decay": Arm("decay", True, "s2"), "drop": Arm("dropout", False, "")}


@pytest.mark.parametrize(
    ("arms", "error"),
    [
        ({"x": {"removes": "decay", "step": "s9"}}, "steps.x.step: 's9' is not a step of the progression after the first, up to s2 (s2)"),
        ({"x": {"removes": "epochs", "step": "s3"}}, "steps.x.step: 's3' is not a step of the progression"),
        ({"x": {"removes": "decay", "step": "s1"}}, "steps.x.step: 's1' is not a step of the progression"),
        ({"x": {"removes": "decay", "step": "s2", "dropout": 0.1}}, "steps.x.dropout: an arm that removes sets no step key"),
        ({"x": {"adds": "dropout"}}, "steps.x: adds 'dropout' but sets no step key"),
        ({"x": {"adds": "dropout", "dropuot": 0.1}}, "steps.x.dropuot: unknown step key"),
        ({"x": {"adds": "dropout", "step": "s2", "dropout": 0.1}}, "steps.x.step: names the step that adds a removed idea"),
        ({"x": {}}, "steps.x: needs one of `removes` or `adds`"),
        ({"full": {}}, "steps.full: the baseline is s2 as the main pipeline trains it (its history is read, not retrained here): remove the entry"),
    ],
)  # fmt: skip
def test_an_arm_that_cannot_be_drawn_from_the_progression_is_named(tmp_path, arms, error):
    with pytest.raises(ParamsError, match=f"^{re.escape(error)}"):
        load_ablation(write_ablation(tmp_path, **arms))


def test_an_ablation_takes_the_final_steps_seeds_and_names_its_own(tmp_path):
    params = {**write_ablation(tmp_path), "seeds": [1, 2, 3]}
    with pytest.raises(
        ParamsError, match=r"^seeds: every arm trains the seeds of s2, the baseline \(steps\.s2\.seeds in "
    ):
        load_ablation(params)


def test_an_ablation_whose_progression_is_missing_is_named(tmp_path):
    params = {**write_ablation(tmp_path), "progression": str(tmp_path / "nope.yaml")}
    with pytest.raises(
        ParamsError, match=f"^progression: {re.escape(str(tmp_path))}/nope.yaml: no such params file$"
    ):
        load_ablation(params)


@pytest.mark.parametrize("name", ["plateau", "keras_plateau"])
def test_an_accuracy_driven_schedule_watches_the_validation_split_or_asks_for_the_test_set(name):
    """Never steered by the test set unless the step says so (and is marked for it)."""
    assert error_of(entry(schedule={"name": name})) == (
        f"steps.s1.schedule.watch: {name} watches the validation accuracy, but the step holds out no "
        "`validation` images: set validation (10000, as the search) or watch: test (its results are then "
        "marked as steered by the test set)"
    )
    held_out = parse_step("s1", entry(schedule={"name": name}, validation=1000))
    assert held_out.schedule["watch"] == "validation" and not steered_by_test(held_out.schedule)
    asked = parse_step("s1", entry(schedule={"name": name, "watch": "test"}))
    assert steered_by_test(asked.schedule)
    assert error_of(entry(schedule={"name": name, "watch": "train"}, validation=1000)) == (
        "steps.s1.schedule.watch: must be one of validation, test"
    )
    assert "watch" not in parse_step("s1", entry(schedule={"name": "onecycle", "max_lr": 0.1})).schedule
