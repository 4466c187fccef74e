#!/usr/bin/env bash
# DVC's run cache on the real project: an edit to one ablation arm undone, two experiments
# that share a configuration, and a teammate's fresh clone after `dvc push --run-cache` and
# `share_runs`. Works in clones under a temporary folder (the checkout here is not touched),
# sharing this checkout's DVC cache for the prepared data; prints what each step ran and its
# wall time, and the CPU.
#   bash benchmarks/run_cache.sh [undo] [experiments] [teammate] > benchmarks/run_cache.md
# (the sections named, default all; the teammate pushes the runs the others made here)
set -euo pipefail
here=$(pwd)
work=$(mktemp -d)
arm=with-dropout
target="ablation/dvc.yaml:train@$arm"
export MNIST_THREADS=1

timed() {  # a command's wall time and the lines that say what DVC ran
  local start code=0
  start=$(date +%s%N)
  "$@" > "$work/out.txt" 2>&1 || code=$?
  printf '    $ %s\n' "$*"
  grep -E "Running stage|is cached|up to date|share_runs:|pushed|fetched|ERROR" "$work/out.txt" | sed 's/^/    /' || true
  printf '    (exit %d, %s s)\n\n' "$code" "$(python -c "print(f'{($(date +%s%N) - $start) / 1e9:.1f}')")"

}

echo "# DVC's run cache on the real project"
echo
echo "\`bash benchmarks/run_cache.sh\`: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs),"
echo "torch $(python -c 'import torch; print(torch.backends.cpu.get_cpu_capability())'), $(nproc) cores;"
echo "The arm \`$arm\` of the ablation, its epochs edited to 1 (2 in the experiments)."
echo

git clone -q "$here" "$work/project"
cd "$work/project"
dvc cache dir --local "$here/.dvc/cache"
dvc checkout -q data/raw data/prepared

undo() {
echo "## Undo an edit"
echo
sed -i "s/^    dropout: 0.05$/    dropout: 0.05\n    epochs: 1/" ablation/params.yaml
git diff --stat ablation/params.yaml | head -1 | sed 's/^/    edited: /'
timed dvc repro "$target"
git checkout -q ablation/params.yaml
timed dvc repro "$target"
echo "    git status after the undo: '$(git status --porcelain | tr '\n' ' ')'"
echo
}

experiments() {
echo "## Two experiments that share a configuration"
echo
setting="ablation/params.yaml:+steps.$arm.epochs=2"
timed dvc exp run --temp -n first -S "$setting" "$target"
timed dvc exp run --temp -n second -S "$setting" "$target"
}

teammate() {
echo "## A teammate's fresh clone"
echo
git remote add origin "$here" 2>/dev/null || true
dvc remote add -q --local -d shared "$work/remote"
timed dvc push --run-cache
timed python -m mnist_budget.tools.share_runs
git clone -q "$here" "$work/teammate"
cd "$work/teammate"
dvc remote add -q --local -d shared "$work/remote"
timed dvc pull --run-cache
timed dvc repro "$target"
sed -i "s/^    dropout: 0.05$/    dropout: 0.05\n    epochs: 1/" ablation/params.yaml
timed dvc repro --pull "$target"
cd "$work/project"
}

for section in "${@:-undo experiments teammate}"; do
  for name in $section; do
    echo "(commit $(git rev-parse --short HEAD))"
    echo
    "$name"
  done
done
rm -rf "$work"
