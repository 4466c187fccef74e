"""A stage that is stopped leaves no temporary file and keeps the previous output; a stage
whose `dvc` dies stops too. Real processes and real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

# A stage-like program: writes half an output through atomic_path, then waits to be stopped.
HALF_WRITTEN = """
import sys, time
from pathlib import Path
from mnist_budget.atomic_files import atomic_path
from mnist_budget.cli import stage_main

@stage_main
def main(path):
    with atomic_path(Path(path)) as tmp:
        tmp.write_text("half")
        print("writing", flush=True)
        time.sleep(60)
        tmp.write_text("whole")

main(sys.argv[1])
"""


def wait_for_line(process: subprocess.Popen, expected: str) -> None:
    line = process.stdout.readline()
    assert line.strip() == expected, line


def test_sigterm_during_a_write_keeps_the_old_output_and_no_temp_file(tmp_path):
    output = tmp_path / "out" / "model.pt2"
    output.parent.mkdir()
    output.write_text("previous")
    process = subprocess.Popen(
        [sys.executable, "-c", HALF_WRITTEN, str(output)], stdout=subprocess.PIPE, text=True, env=ENV
    )
    wait_for_line(process, "writing")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    assert output.read_text() == "previous"
    assert sorted(p.name for p in output.parent.iterdir()) == ["model.pt2"]  # no .model.*.tmp.pt2


# A parent (standing in for `dvc`) that starts a stage-like child, prints its pid and waits.
PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]], stdout=subprocess.PIPE, text=True)
print(child.stdout.readline().strip(), child.pid, flush=True)
child.wait()
"""


def test_a_stage_stops_when_the_dvc_that_started_it_is_killed(tmp_path):
    output = tmp_path / "model.pt2"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, HALF_WRITTEN, str(output)], stdout=subprocess.PIPE, text=True, env=ENV
    )
    said, pid = parent.stdout.readline().split()
    assert said == "writing"
    parent.kill()  # SIGKILL: the parent can forward nothing
    parent.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _state(Path(f"/proc/{pid}")) not in ("gone", "Z"):
        time.sleep(0.1)
    assert _state(Path(f"/proc/{pid}")) in ("gone", "Z"), "the stage outlived its parent"
    assert list(tmp_path.iterdir()) == []  # the child cleaned up its temp file on the way out


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_sigterm_to_dvc_stops_the_stage_and_leaves_no_temp_file(tmp_path, shell):
    """`dvc repro` stopped with SIGTERM: its stage stops too, instead of running on orphaned.
    DVC runs a command through `$SHELL -c` (`/bin/sh` when unset, as on CI); dash keeps
    itself between dvc and the stage unless the command says `exec`, as every dvc.yaml does."""
    bin_dir = Path(sys.executable).parent
    env = {**ENV, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SHELL": shell}
    (tmp_path / "stage.py").write_text(HALF_WRITTEN)
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=tmp_path, env=env, check=True)
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  slow:\n    cmd: exec python stage.py out/model.pt2\n    outs: [out/model.pt2]\n"
    )
    dvc = subprocess.Popen(["dvc", "repro"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    while (line := dvc.stdout.readline()) and line.strip() != "writing":
        pass
    assert line.strip() == "writing"
    stage = next(p for p in Path("/proc").glob("[0-9]*") if _cmdline(p).endswith("stage.py out/model.pt2"))
    dvc.send_signal(signal.SIGTERM)
    dvc.wait(timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _state(stage) not in ("gone", "Z"):
        time.sleep(0.1)
    assert _state(stage) in ("gone", "Z"), "the stage outlived dvc"
    assert not list((tmp_path / "out").glob(".*")), "a temporary file was left behind"


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _state(proc: Path) -> str:
    try:
        return (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
