"""Where a training process runs: worker count, threads, device, determinism, seeds."""

from __future__ import annotations

import os
import random

import torch

from mnist_budget.base.errors import StageError
from mnist_budget.base.kernels import check_pinned, cpu_flags
from mnist_budget.config.step_config import StepConfig

THREADS_VARIABLE = "MNIST_THREADS"
# instruction sets past AVX-512 that oneDNN's native kernels use (bf16 dot products, AMX tiles)
NATIVE_EXTRAS = {"avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile"}


def worker_count(step: StepConfig) -> int:
    """How many seeds train at once: $MNIST_THREADS, else one per core, and never more than
    the step has seeds. Not a params key: it changes no result (every seed trains on one
    thread), so changing it must retrain nothing.

    Each worker uses one thread (measured here: a 2-thread process is only 12% faster than a
    1-thread one, and 3.2x slower as soon as another process uses a core, while 1-thread
    processes side by side do not slow each other). Queued experiments inherit
    $MNIST_THREADS from `dvc queue start`: give each of N jobs cores / N.
    """
    text = os.environ.get(THREADS_VARIABLE, "").strip()
    if text and not (text.isdigit() and text.isascii()):
        raise StageError(
            f"${THREADS_VARIABLE}={text!r}: expected how many seeds train side by side, a whole number "
            "(0 or unset: one per core)"
        )
    cores = int(text or 0) or os.cpu_count() or 1
    return max(1, min(cores, len(step.seeds)))


def pick_device(step: StepConfig) -> torch.device:
    """Where `step` trains: its `device`, with `auto` as CUDA when torch finds a GPU. (`nets`
    builds `gap` by the same rule.) `device: cuda` without a GPU stops here, in one line,
    before the train stage starts any worker."""
    if step.device == "cuda" and not torch.cuda.is_available():
        raise StageError(
            f"train {step.name}: device: cuda, but torch finds no CUDA GPU here "
            "(torch.cuda.is_available() is False); set device: auto or cpu"
        )
    if step.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(step.device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed every RNG a run uses; return the generator for data order and augmentation."""
    random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def hold_cuda_to_fp32() -> None:
    """CUDA as the CPU computes: fp32 in fp32, fixed algorithms, and any kernel without a
    deterministic implementation an error. Every training on CUDA runs under it (`set_up`),
    and so does the train stage itself before `made_on` reads the settings back.

    cuDNN convolutions on Ampere and later GPUs default to TF32, a 10-bit mantissa: fp32 would
    then mean something else on a GPU than on a CPU. TF32 goes off in bf16 too, where the
    evaluation and everything outside the autocast forward pass stay fp32."""
    # cuBLAS's own reductions in a fixed order (the CUDA docs' setting for reproducibility)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False  # timing-based picks differ from run to run
    torch.backends.cudnn.deterministic = True
    # not warn_only: no kernel of ours lacks a deterministic version on CUDA (`gap` is a plain
    # mean there, `nets.GlobalAvgPool`), so one that does must stop the run, not warn
    torch.use_deterministic_algorithms(True, warn_only=False)


def made_on(step: StepConfig, device: torch.device) -> dict[str, object]:
    """What besides the params fixes a training's bytes, written beside its results: the
    device, the instruction set of its CPU kernels, torch's release, and whether two runs
    give the same bytes. A re-run elsewhere reads it to say why its numbers differ. On CUDA,
    the TF32 and cuDNN settings as torch has them in force in this process (the train stage
    holds it to `hold_cuda_to_fp32` first, as every training worker is)."""
    release = torch.__version__.split("+")[0]  # a CPU or a CUDA build runs the same CPU kernels
    if device.type == "cuda":
        cudnn = torch.backends.cudnn
        tf32 = {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": cudnn.allow_tf32}
        settings = {
            "version": cudnn.version(),
            "deterministic": cudnn.deterministic,
            "benchmark": cudnn.benchmark,
        }
        strict = torch.are_deterministic_algorithms_enabled() and not (
            torch.is_deterministic_algorithms_warn_only_enabled()
        )
        return {
            "device": f"cuda ({torch.cuda.get_device_name(device)})",
            "torch": release,
            "cuda": torch.version.cuda,
            "tf32": tf32,
            "cudnn": settings,
            "deterministic": strict and settings["deterministic"] and not settings["benchmark"],
        }
    kernels = torch.backends.cpu.get_cpu_capability()
    if step.kernels == "native":  # oneDNN may go past ATen's capability: name what it can reach
        kernels += "".join(f" {flag}" for flag in sorted(cpu_flags() & NATIVE_EXTRAS))
    return {
        "device": "cpu",
        "kernels": f"{kernels} ({step.kernels})",
        "torch": release,
        "deterministic": True,
    }


def set_up(step: StepConfig, seed: int, threads: int = 1) -> tuple[torch.device, torch.Generator]:
    """Threads, deterministic kernels and seeds for one training run; its device and
    generator. The pipeline always uses one thread: a seed then gives the same bytes alone
    or beside others (a CPU convolution's sums split across threads in another order). The
    kernel pins are set before (`kernels.pin`, by the stage; spawned workers inherit them)."""
    check_pinned(step.kernels)  # raises on a late pin; the train stage says the rest
    torch.set_num_threads(threads)
    device = pick_device(step)
    if device.type == "cuda":
        hold_cuda_to_fp32()
    else:  # the CPU runs as it did for every committed result
        torch.use_deterministic_algorithms(True, warn_only=True)
    # Deterministic mode also fills each new tensor with NaN, in case a kernel reads memory it
    # never wrote. None of ours does (one epoch of s1-skeleton, s7-separable and the references'
    # inception and residual nets: the same bytes either way), and without the fill they
    # train 1.10-1.16x faster (benchmarks/precision_speed.md).
    torch.utils.deterministic.fill_uninitialized_memory = False
    return device, seed_everything(seed)
