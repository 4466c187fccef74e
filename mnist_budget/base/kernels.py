"""Which CPU kernels a training or evaluation runs: the instruction set that fixes its bytes.

PyTorch picks its kernels by the CPU's instruction set, and an AVX-512 kernel sums in
another order than an AVX2 one, so the same params give other bytes on another kind of CPU.
`kernels: portable` caps oneDNN, ATen and MKL at AVX2, which every x86-64 CPU of the last
ten years has. Measured with ../shared/fingerprint/kernel_fingerprint.py (150 training steps
of the project's layer kinds): the pinned hashes of an AMD EPYC with AVX-512 BF16 (Zen 4)
equal those of an AVX2-only AMD EPYC (Zen 3), in fp32 and in bf16 (docs/reproducibility.md).
`native` lets each library pick the CPU's best; on a GPU the pins do nothing.

Torch-free: the variables must be in the environment before any kernel runs (oneDNN, ATen
and MKL each read theirs once, at their first call), so `pin` runs before a stage builds a
tensor, and `check_pinned` then confirms that ATen took it.
"""

from __future__ import annotations

import os

from mnist_budget.base.errors import StageError

PINS: dict[str, dict[str, str]] = {
    "portable": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE"},
    "native": {},
}
KERNELS = tuple(PINS)


def pin(kernels: str) -> None:
    """Set `kernels`' variables for this process and the workers it spawns; `native`
    removes them, so a pinned parent (a test, a benchmark) does not leak its pins."""
    for variable in PINS["portable"]:
        os.environ.pop(variable, None)
    os.environ.update(PINS[kernels])


def check_pinned(kernels: str) -> str:
    """Fail if ATen runs a wider instruction set than `kernels` asks for: a kernel ran before
    `pin`. On a CPU without AVX2 (an ARM laptop, an old x86) no pin can give the portable
    bytes: a one-line note that says so, '' when ATen runs what was asked."""
    import torch  # only here: the module stays importable before torch

    wanted = PINS[kernels].get("ATEN_CPU_CAPABILITY")
    running = torch.backends.cpu.get_cpu_capability()
    if not wanted or running.lower() == wanted:
        return ""
    if running.upper().startswith("AVX512"):
        raise StageError(
            f"kernels: {kernels} asks for {wanted.upper()} kernels, but this process already runs "
            f"{running} ones (a kernel ran before the pins were set); report this as a bug"
        )
    return (
        f"kernels: {kernels} asks for {wanted.upper()} kernels, which this CPU does not have (it runs "
        f"{running} ones): the results are this CPU's own bytes, not the committed ones; "
        "`python -m mnist_budget.tools.agree` says whether they agree within the seed noise"
    )


def cpu_flags() -> set[str]:
    """The instruction-set flags of this CPU (Linux's /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        return set()


def slow_bf16(kernels: str) -> str:
    """Why bf16 convolutions run through ATen's slow fallback here, or '' when oneDNN has
    native bf16 kernels (AVX-512 BF16 or AMX, and `native` kernels to reach them)."""
    if kernels == "portable":
        return "kernels: portable holds oneDNN to AVX2, which has no bf16 convolutions"
    if not cpu_flags() & {"avx512_bf16", "amx_bf16"}:
        return "this CPU has neither AVX-512 BF16 nor AMX"
    return ""
