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

pytestmark = pytest.mark.e2e  # real stage processes, real signals

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

# A stage-like program: writes half an output through atomic_path, then waits to be stopped.
HALF_WRITTEN = """
import sys, time
from pathlib import Path
from mnist_budget.base.atomic_files import atomic_path
from stages.cli import stage_main

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
def test_a_stage_knows_its_starter_past_the_shell(shell):
    """dash forks the command where bash execs it: either way the starter is this process."""
    code = "from mnist_budget.base.signals import starter; print(starter())"
    out = subprocess.run(
        [shell, "-c", f"{sys.executable} -c '{code}'"], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert int(out.stdout) == os.getpid()


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_sigterm_to_dvc_stops_the_stage_and_leaves_no_temp_file(tmp_path, shell):
    """`dvc repro` stopped with SIGTERM: its stage stops too, instead of running on orphaned.
    DVC runs a command through `$SHELL -c` (`/bin/sh` when unset, as on CI); dash stays
    between dvc and the stage, which then watches dvc past it (`signals.die_with_parent`)."""
    bin_dir = Path(sys.executable).parent
    env = {**ENV, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SHELL": shell}
    (tmp_path / "stage.py").write_text(HALF_WRITTEN)
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=tmp_path, env=env, check=True)
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  slow:\n    cmd: python stage.py out/model.pt2\n    outs: [out/model.pt2]\n"
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


# A stage-like program that rewrites many outputs with `write_all` over and over, each time
# with the next generation number, until it is stopped.
REWRITING = """
import sys
from pathlib import Path
from mnist_budget.base.atomic_files import write_all
from stages.cli import stage_main

@stage_main
def main(folder):
    paths = [Path(folder) / f"out{i}.txt" for i in range(int(sys.argv[2]))]
    while True:
        generation = int(paths[0].read_text()) + 1
        write_all({path: str(generation).encode() for path in paths})

main(sys.argv[1])
"""


def test_a_signal_never_lands_between_the_renames_of_write_all(tmp_path):
    """Stopped at many moments, the outputs are always all of one generation, never mixed."""
    count = 1500
    for i in range(count):
        (tmp_path / f"out{i}.txt").write_text("0")
    generations = set()
    for trial in range(12):
        process = subprocess.Popen([sys.executable, "-c", REWRITING, str(tmp_path), str(count)], env=ENV)
        time.sleep(
            0.3 + 0.037 * trial
        )  # a fraction of a second of imports, then a write every few tens of ms
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 128 + signal.SIGTERM
        contents = {(tmp_path / f"out{i}.txt").read_text() for i in range(count)}
        assert len(contents) == 1, f"trial {trial}: outputs of {len(contents)} generations"
        generations |= contents
        assert not list(tmp_path.glob(".*"))  # no temporary file or kept link left
    assert len(generations) > 1, "the program never got to write: the test tested nothing"


@pytest.mark.skipif(os.geteuid() != 0, reason="marking a file immutable (chattr +i) needs root")
def test_a_rename_that_fails_midway_puts_back_the_outputs_already_renamed(tmp_path):
    from mnist_budget.base.atomic_files import write_all

    paths = [tmp_path / name for name in ("report.md", "summary.csv", "figure.png")]
    for path in paths:
        path.write_text("old")
    if subprocess.run(["chattr", "+i", str(paths[1])], check=False).returncode:
        pytest.skip("this file system cannot mark a file immutable")
    try:
        with pytest.raises(PermissionError) as error:
            write_all({path: b"new" for path in paths} | {tmp_path / "new.txt": b"new"})
    finally:
        subprocess.run(["chattr", "-i", str(paths[1])], check=True)
    assert error.value.filename == str(paths[1])  # the output, not its temporary file
    assert [path.read_text() for path in paths] == ["old", "old", "old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png", "report.md", "summary.csv"]
