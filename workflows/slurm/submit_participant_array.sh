#!/usr/bin/env bash
# Submit the participant level of a whole BIDS dataset (ADNI: ~2,000 subjects) as SLURM
# array jobs, one task per subject; or resubmit only the subjects that did not finish.
#
#   workflows/slurm/submit_participant_array.sh BIDS_DIR OUTPUT_DIR [options] [-- DANINET_OPTIONS]
#
# Options:
#   --subjects FILE      labels to run, one a line (default: every sub-* of BIDS_DIR)
#   --rerun-failed       run only the subjects whose derivatives are incomplete
#                        (workflows/check_derivatives.py --quick --missing)
#   --throttle N         at most N tasks running at once (default 50): `--array=1-n%N`
#   --max-array N        largest array of one sbatch (default 1000; SLURM's default
#                        MaxArraySize is 1001): a bigger list is cut into chunks, each
#                        chunk submitted after the one before ends (afterany), so the
#                        throttle holds for the whole dataset
#   --run-dir DIR        subject lists, logs, status and the pybids index
#                        (default OUTPUT_DIR/../daninet_slurm)
#   --sbatch-args "..."  more sbatch options: partition, account, --mem, --time, ...
#   --no-validate        skip the BIDS validator (otherwise it runs once, here)
#   --dry-run            print the sbatch commands only
# Environment:
#   DANINET         how to run the app (default "daninet"); a container, e.g.
#                   DANINET="apptainer run --cleanenv -B /data,/scratch daninet.sif"
#   DANINET_PYTHON  a Python with daninet_pipeline, for the one-off index and checks
#                   (default: python3; e.g. "apptainer exec daninet.sif python")
#   WORK_ROOT       node-local scratch for each task's Nipype work folder
#
# Prints the array job ids (also appended to RUN_DIR/jobs.txt). Per subject:
# RUN_DIR/logs/daninet-participant_<job>_<task>.out and RUN_DIR/status/sub-<label>.tsv
# (label, job_task, exit code, seconds, max RSS kB, node, date); summarise with
# workflows/slurm/summarise_status.sh RUN_DIR.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
recipes="$(dirname "$here")"
usage() { sed -n '2,32p' "$0" >&2; exit 2; }

[ $# -ge 2 ] || usage
bids_dir="$(realpath "$1")"; output_dir="$(realpath -m "$2")"; shift 2
subjects=""; rerun=0; throttle=50; max_array=1000; run_dir=""; sbatch_args=""
validate=1; dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    --subjects) subjects="$(realpath "$2")"; shift 2 ;;
    --rerun-failed) rerun=1; shift ;;
    --throttle) throttle="$2"; shift 2 ;;
    --max-array) max_array="$2"; shift 2 ;;
    --run-dir) run_dir="$2"; shift 2 ;;
    --sbatch-args) sbatch_args="$2"; shift 2 ;;
    --no-validate) validate=0; shift ;;
    --dry-run) dry=1; shift ;;
    --) shift; break ;;
    *) usage ;;
  esac
done
daninet_opts=("$@")
DANINET="${DANINET:-daninet}"
DANINET_PYTHON="${DANINET_PYTHON:-python3}"
run_dir="$(realpath -m "${run_dir:-$(dirname "$output_dir")/daninet_slurm}")"
mkdir -p "$run_dir/logs" "$run_dir/status" "$run_dir/lists" "$output_dir"
stamp="$(date -u +%Y%m%dT%H%M%S)"

# 1. The subjects.
list="$run_dir/lists/subjects_$stamp.txt"
if [ -n "$subjects" ]; then
  sed -e 's/^sub-//' -e '/^[[:space:]]*$/d' "$subjects" > "$list"
else
  find "$bids_dir" -mindepth 1 -maxdepth 1 -type d -name 'sub-*' -printf '%f\n' \
    | sed 's/^sub-//' | sort > "$list"
fi
if [ "$rerun" = 1 ]; then
  missing="$run_dir/lists/rerun_$stamp.txt"
  mapfile -t labels < "$list"
  # shellcheck disable=SC2086  # DANINET_PYTHON is a command line
  $DANINET_PYTHON "$recipes/check_derivatives.py" "$bids_dir" "$output_dir" --quick \
    --participant-label "${labels[@]}" --missing "$missing" > "$run_dir/lists/check_$stamp.log" 2>&1 || true
  mv "$missing" "$list"
fi
n=$(wc -l < "$list")
if [ "$n" -eq 0 ]; then
  echo "[submit] nothing to run: every selected subject is complete" >&2
  exit 0
fi
echo "[submit] $n subjects in $list" >&2

# 2. Validate once and index once (the tasks reuse the pybids index read-only).
db="$run_dir/bids_db"
if [ "$dry" = 0 ]; then
  # shellcheck disable=SC2086
  $DANINET_PYTHON - "$bids_dir" "$db" "$validate" <<'PY' >&2
import sys, time
from pathlib import Path
from daninet_pipeline.bids.inputs import open_layout
from daninet_pipeline.bids.validation import validate_or_raise
bids, db, validate = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
t0 = time.perf_counter()
if validate:
    validate_or_raise(bids)
open_layout(bids, db)
print(f"[submit] {'validated and ' if validate else ''}indexed {bids} in "
      f"{time.perf_counter() - t0:.1f} s (index in {db})")
PY
fi
DANINET_ARGS="--bids-database-dir $db --skip-bids-validation ${daninet_opts[*]:-}"

# 3. One array per chunk of at most max_array subjects, chained with afterany.
split -d -a 4 -l "$max_array" "$list" "$run_dir/lists/chunk_${stamp}_"
previous=""
for chunk in "$run_dir/lists/chunk_${stamp}_"*; do
  m=$(wc -l < "$chunk")
  # Passed through the environment (sbatch --export=ALL), since --export=VAR=value
  # cannot hold values with commas, such as apptainer's -B /a,/b.
  cmd=(env "BIDS_DIR=$bids_dir" "OUTPUT_DIR=$output_dir" "SUBJECTS_FILE=$chunk"
       "RUN_DIR=$run_dir" "DANINET=$DANINET" "DANINET_ARGS=$DANINET_ARGS"
       sbatch --parsable --export=ALL --array="1-${m}%${throttle}"
       --output="$run_dir/logs/%x_%A_%a.out")
  [ -n "$previous" ] && cmd+=(--dependency="afterany:$previous")
  # shellcheck disable=SC2206  # sbatch_args is a list of options
  cmd+=($sbatch_args "$here/participant_array.sbatch")
  if [ "$dry" = 1 ]; then
    printf '%q ' "${cmd[@]}"; echo
    previous="DRYRUN"
    continue
  fi
  jobid="$("${cmd[@]}")"
  jobid="${jobid%%;*}"
  echo "$jobid" | tee -a "$run_dir/jobs.txt"
  echo "[submit] array $jobid: $m subjects from $chunk, at most $throttle at once" >&2
  previous="$jobid"
done
