"""Kernel pins: set before any tensor, checked after, and bf16's slow cases named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mnist_budget.base.kernels import PINS, cpu_flags, slow_bf16

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str) -> subprocess.CompletedProcess:
    """`code` in a fresh process without the pins this test process runs under (conftest)."""
    env = {key: value for key, value in os.environ.items() if key not in PINS["portable"]}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )


def test_pins_set_after_import_torch_but_before_any_tensor_take_effect():
    result = run_python(
        "import torch\n"
        "from mnist_budget.base.kernels import check_pinned, pin\n"
        "pin('portable'); check_pinned('portable')\n"
        "print(torch.backends.cpu.get_cpu_capability())"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "AVX2"


@pytest.mark.skipif(not {"avx512f"} & cpu_flags(), reason="on an AVX2-only CPU a late pin changes nothing")
def test_a_pin_after_a_kernel_ran_is_an_error_not_other_bytes():
    result = run_python(
        "import torch\n"
        "from mnist_budget.base.kernels import check_pinned, pin\n"
        "torch.nn.Conv2d(1, 8, 3)\n"
        "pin('portable'); check_pinned('portable')"
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "mnist_budget.base.errors.StageError: kernels: portable asks for AVX2 kernels, but this process already runs AVX512"
        )
    )


def test_the_tests_run_the_stages_portable_kernels():
    assert torch.backends.cpu.get_cpu_capability() == "AVX2"


def test_bf16_is_slow_under_portable_kernels_whatever_the_cpu():
    assert slow_bf16("portable") == "kernels: portable holds oneDNN to AVX2, which has no bf16 convolutions"
    native_bf16 = bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})
    assert (slow_bf16("native") == "") == native_bf16


def test_a_cpu_without_avx2_trains_with_one_line_saying_its_bytes_are_its_own():
    # ATen told to run its plainest kernels: what a CPU without AVX2 runs under the pins
    result = run_python(
        "import os\n"
        "from mnist_budget.base.kernels import check_pinned, pin\n"
        "pin('portable'); os.environ['ATEN_CPU_CAPABILITY'] = 'default'\n"
        "import torch; torch.nn.Conv2d(1, 8, 3)\n"
        "print(check_pinned('portable'))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "kernels: portable asks for AVX2 kernels, which this CPU does not have (it runs DEFAULT ones): "
        "the results are this CPU's own bytes, not the committed ones; `python -m mnist_budget.tools.agree` "
        "says whether they agree within the seed noise"
    )
