"""In a log, each epoch is one whole line, even when seeds train side by side in processes
that share stderr (print's two writes, text then newline, once ran two seeds' lines together
in a `dvc repro` log: 'tiny-a seed 1 1/1: ... test=35.62%tiny-a seed 2 1/1: ...')."""

from __future__ import annotations

import re
import subprocess
import sys

WRITER = """
import sys
from mnist_budget.train.progress import epoch_bar
for epoch in range(2000):
    with epoch_bar(f"net seed {sys.argv[1]} {epoch}/2000", total=10, line=0) as bar:
        bar.update(10)
        bar.set_postfix(loss="0.1234", test="99.40%")
"""


def test_seeds_writing_to_one_log_at_once_each_write_whole_lines():
    # four writers on one pipe, stderr no terminal: plain lines, never a bar
    command = f"for s in 1 2 3 4; do {sys.executable} -c '{WRITER}' $s & done; wait"
    run = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True)
    lines = run.stderr.splitlines()
    assert "\r" not in run.stderr and len(lines) == 4 * 2000
    pattern = r"net seed \d \d+/2000: 10/10 batches in \d+ s, loss=0\.1234, test=99\.40%"
    assert [line for line in lines if not re.fullmatch(pattern, line)] == []
