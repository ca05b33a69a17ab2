#!/usr/bin/env bash
# The evaluation of docs/group_and_simulation.md ("Against the identity answer"): a
# 16-subject demo dataset, the participant level, the demo preset (300 steps) and the
# same preset trained 5x longer, then both models scored side by side with identity on
# the same test subjects.   usage: bash benchmarks/honesty_run.sh DIR [NPROCS]
set -euo pipefail
dir=${1:?usage: honesty_run.sh DIR [NPROCS]}
nprocs=${2:-2}
here=$(cd "$(dirname "$0")" && pwd)
common=(--work-dir "$dir/work" --nprocs "$nprocs" --skip-bids-validation)
t0=$SECONDS
step() { echo "[honesty] $(date +%T) $* ($((SECONDS - t0)) s so far)"; }
step "data"
[ -f "$dir/bids/dataset_description.json" ] || daninet-demo-data "$dir/bids" --subjects 16 --seed 1 --shape small --nprocs "$nprocs"
step "participant level"
daninet "$dir/bids" "$dir/out" participant "${common[@]}"
step "group level, demo preset"
daninet "$dir/bids" "$dir/out" group --config demo "${common[@]}" > "$dir/group_demo.log" 2>&1
step "group level, demo preset 5x longer"
daninet "$dir/bids" "$dir/out" group --config "$here/configs/demo-long.json" "${common[@]}" > "$dir/group_long.log" 2>&1
step "evaluation of both models"
daninet "$dir/bids" "$dir/out" group --evaluate "${common[@]}"
step "done"
