"""The GPU path as far as a CPU can check it: `gap`'s CUDA module gives AdaptiveAvgPool2d's
bits, the CPU's made_on.json is unchanged, CUDA is held to fp32 and deterministic kernels,
`device: cuda` without a GPU stops the train stage in one line, and evaluate scores where
the history was scored (benchmarks/gpu_check.py checks the rest on a GPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from mnist_budget.base.atomic_files import json_bytes, md5_of
from mnist_budget.base.layout import MAIN_LAYOUT
from mnist_budget.config.step_config import config_of, parse_step
from mnist_budget.train import runtime, scoring
from mnist_budget.train.nets import GlobalAvgPool, build_net
from mnist_budget.train.runtime import made_on, pick_device
from mnist_budget.train.scoring import scoring_device
from mnist_budget.train.seed_pool import train_seed
from stages import evaluate, train
from tests.conftest import SMALL_STEP, synthetic_digits

GPU = "NVIDIA Example GPU"


def step_of(**changes):
    return parse_step("tiny", {**SMALL_STEP, **changes})


@pytest.fixture
def cuda_here(monkeypatch):
    """torch as it answers on a machine with one CUDA GPU (nothing runs on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: GPU)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 92400)  # it asks the driver


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize("memory_format", [torch.channels_last, torch.contiguous_format], ids=str)
def test_the_mean_gives_adaptive_average_poolings_bits(memory_format):
    """Forward and input gradient, fp32, at the maps the nets pool (a full batch and the last
    one of an epoch); a half-zero input as after a ReLU."""
    generator = torch.Generator().manual_seed(0)
    for batch in (64, 32):
        for channels in (10, 16, 48):
            for side in (6, 5, 3, 1):
                base = torch.randn(batch, channels, side, side, generator=generator).clamp_min(0)
                grad = torch.randn(batch, channels, 1, 1, generator=generator)
                results = []
                for pool in (nn.AdaptiveAvgPool2d(1), GlobalAvgPool()):
                    x = base.clone().to(memory_format=memory_format).requires_grad_()
                    y = pool(x)
                    y.backward(grad)
                    results.append((y.detach(), x.grad))
                (y1, g1), (y2, g2) = results
                assert torch.equal(y1, y2) and torch.equal(g1, g2), (batch, channels, side)


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda"])
@pytest.mark.parametrize("available", [False, True])
def test_gap_is_the_mean_exactly_where_the_step_trains_on_cuda(monkeypatch, device, available):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    step = step_of(device=device)
    gap = next(m for m in build_net(step).modules() if isinstance(m, (GlobalAvgPool, nn.AdaptiveAvgPool2d)))
    if device == "cuda" and not available:
        with pytest.raises(runtime.StageError):
            pick_device(step)
    else:  # `nets` and `runtime` pick the same device
        assert isinstance(gap, GlobalAvgPool) == (pick_device(step).type == "cuda")
    # the CPU keeps AdaptiveAvgPool2d: a model file is its exported graph, and its bytes stay
    assert isinstance(gap, GlobalAvgPool) == (device == "cuda" or (device == "auto" and available))


def test_the_mean_leaves_a_models_keys_as_they_were(monkeypatch):
    step = step_of(layers=["conv 8", {"residual": ["conv 8 p=1"]}, "conv 16", "gap", "conv 10 k=1"])
    on_cpu = build_net(step).state_dict()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    on_cuda = build_net(step)
    assert any(isinstance(m, GlobalAvgPool) for m in on_cuda.modules())
    assert list(on_cuda.state_dict()) == list(on_cpu)
    assert not list(GlobalAvgPool().parameters()) and not list(GlobalAvgPool().buffers())


def test_made_on_the_cpu_is_what_the_committed_results_hold():
    release = torch.__version__.split("+")[0]
    kernels = torch.backends.cpu.get_cpu_capability()
    record = made_on(step_of(), torch.device("cpu"))
    assert list(record) == ["device", "kernels", "torch", "deterministic"]
    assert record == {
        "device": "cpu",
        "kernels": f"{kernels} (portable)",
        "torch": release,
        "deterministic": True,
    }
    assert json_bytes(record) == (
        b'{\n  "device": "cpu",\n  "kernels": "'
        + f"{kernels} (portable)".encode()
        + b'",\n  "torch": "'
        + release.encode()
        + b'",\n  "deterministic": true\n}\n'
    )


@pytest.fixture
def torch_flags(monkeypatch):
    """Put back the process-wide flags that `hold_cuda_to_fp32` sets."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (
        matmul.allow_tf32,
        cudnn.allow_tf32,
        cudnn.benchmark,
        cudnn.deterministic,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    yield
    matmul.allow_tf32, cudnn.allow_tf32, cudnn.benchmark, cudnn.deterministic = saved[:4]
    torch.use_deterministic_algorithms(saved[4], warn_only=saved[5])


def test_cuda_is_held_to_fp32_and_deterministic_kernels_and_made_on_says_so(torch_flags, cuda_here):
    torch.backends.cudnn.allow_tf32 = True  # torch's default: TF32 convolutions
    torch.backends.cudnn.benchmark = True
    step = step_of()
    before = made_on(step, torch.device("cuda"))
    assert before["tf32"]["cudnn"] and not before["deterministic"]
    device, _ = runtime.set_up(step, seed=1)  # what each training worker runs first
    assert device == torch.device("cuda")
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.is_deterministic_algorithms_warn_only_enabled()  # a non-deterministic kernel raises
    record = made_on(step, device)
    assert list(record) == ["device", "torch", "cuda", "tf32", "cudnn", "deterministic"]
    assert record["device"] == f"cuda ({GPU})"
    assert record["tf32"] == {"matmul": False, "cudnn": False}
    assert record["cudnn"] == {"version": 92400, "deterministic": True, "benchmark": False}
    assert record["deterministic"] is True
    json_bytes(record)  # JSON as the train stage writes it


def test_the_cpu_keeps_its_deterministic_mode(torch_flags):
    device, _ = runtime.set_up(step_of(device="cpu"), seed=1)
    assert device == torch.device("cpu")
    assert (
        torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    )


def tiny_project(root: Path, **changes) -> None:
    """params.yaml, prepared synthetic data and the step's resolved config, in `root`."""
    (root / "params.yaml").write_text(
        "target:\n  test_accuracy: 0.5\n  max_params: 100000\n  max_epochs: 15\n"
    )
    target = {"test_accuracy": 0.5, "max_params": 100000, "max_epochs": 15}  # as `resolve` writes it
    MAIN_LAYOUT.reports.mkdir()
    MAIN_LAYOUT.target.write_bytes(json_bytes(target))
    prepared = root / "data/prepared"
    prepared.mkdir(parents=True)
    (train_images, train_labels), (test_images, test_labels) = (
        synthetic_digits(320, 0),
        synthetic_digits(160, 1),
    )
    tensor = lambda array: torch.from_numpy(array.copy())
    torch.save(
        {
            "train_images": tensor(train_images),
            "train_labels": tensor(train_labels).long(),
            "test_images": tensor(test_images),
            "test_labels": tensor(test_labels).long(),
        },
        prepared / "mnist.pt",
    )
    (prepared / "stats.json").write_text(json.dumps({"mean": 0.2, "std": 0.3}))
    config = MAIN_LAYOUT.config("tiny")
    config.parent.mkdir(parents=True)
    config.write_bytes(json_bytes(config_of(step_of(**changes))))


def test_device_cuda_without_a_gpu_stops_the_train_stage_before_any_worker(
    tmp_path, monkeypatch, capsys, no_cuda
):
    monkeypatch.chdir(tmp_path)
    tiny_project(tmp_path, device="cuda")
    monkeypatch.setattr(train, "train_seeds", lambda step: pytest.fail("a worker started"))
    with pytest.raises(SystemExit) as stopped:
        train.main("tiny")
    assert stopped.value.code == 1
    assert capsys.readouterr().err.splitlines() == [
        (
            "error: train tiny: device: cuda, but torch finds no CUDA GPU here "
            "(torch.cuda.is_available() is False); set device: auto or cpu"
        )
    ]
    assert not (tmp_path / "models").exists() and not MAIN_LAYOUT.step_dir("tiny").exists()


@pytest.mark.parametrize(
    "trained_on, here",
    [("cpu", "cpu"), (f"cuda ({GPU})", "cuda:0"), ("cuda (Another GPU)", None), ("mps", None)],
)
def test_evaluate_scores_where_the_history_was_scored(cuda_here, trained_on, here):
    assert scoring_device(trained_on) == (torch.device(here) if here else None)


def test_evaluate_without_the_gpu_scores_on_the_cpu(no_cuda):
    assert scoring_device(f"cuda ({GPU})") is None
    model = nn.Conv2d(1, 2, 3)
    assert scoring.as_trained(model, torch.device("cpu")) is model  # as every committed result


@pytest.fixture
def trained(tmp_path, monkeypatch, no_cuda, torch_flags):
    """A trained one-seed step with its history and made_on.json, as the train stage leaves it
    (its md5s standing in for dvc.lock's)."""
    monkeypatch.chdir(tmp_path)
    tiny_project(tmp_path, epochs=1)
    step = step_of(epochs=1)
    rows, model = train_seed(step, 1)
    MAIN_LAYOUT.model_dir("tiny").mkdir(parents=True)
    MAIN_LAYOUT.model("tiny", 1).write_bytes(model)
    MAIN_LAYOUT.step_dir("tiny").mkdir(parents=True)
    MAIN_LAYOUT.history("tiny").write_text(pd.DataFrame(rows).to_csv(index=False))
    MAIN_LAYOUT.made_on("tiny").write_bytes(json_bytes(made_on(step, torch.device("cpu"))))
    monkeypatch.setattr(
        evaluate,
        "recorded_files",
        lambda lock, stage, folder: {MAIN_LAYOUT.model("tiny", 1): md5_of(MAIN_LAYOUT.model("tiny", 1))},
    )
    return rows


def evaluated() -> dict:
    evaluate.main("tiny")
    return json.loads(MAIN_LAYOUT.metrics("tiny").read_text())


def test_evaluate_agrees_with_the_history_on_the_cpu(trained, capsys):
    metrics = evaluated()
    assert "scored_on" not in metrics  # the keys every committed metrics.json has
    assert metrics["test_accuracy"]["per_seed"] == {"1": trained[-1]["test_accuracy"]}
    assert capsys.readouterr().err.count("\n") == 1  # its one summary line


def test_a_gpu_trained_history_is_scored_on_the_cpu_and_both_recorded(trained, capsys):
    made_on_path = MAIN_LAYOUT.made_on("tiny")
    made_on_path.write_text(json.dumps({"device": f"cuda ({GPU})"}))
    here = trained[-1]["test_accuracy"]
    metrics = evaluated()
    assert metrics["scored_on"] == {
        "device": "cpu",
        "history_device": f"cuda ({GPU})",
        "history_test_accuracy": {"1": here},
        "test_accuracy": {"1": here},
    }
    assert "the same final test accuracy for every seed" in capsys.readouterr().err
    # a GPU's history one image apart from the CPU's scoring: a note, in the file and on stderr
    history = pd.read_csv(MAIN_LAYOUT.history("tiny"))
    history.loc[history.index[-1], "test_accuracy"] = round(here + 1 / 160, 6)
    history.to_csv(MAIN_LAYOUT.history("tiny"), index=False)
    metrics = evaluated()
    note = metrics["scored_on"]["note"]
    assert (
        note
        == f"the final test accuracy differs: seed 1 {here + 1 / 160:.2%} in the history, {here:.2%} here"
    )
    assert note in capsys.readouterr().err
