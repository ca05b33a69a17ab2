#!/usr/bin/env bash
# Summarise the status files of participant array runs: how many subjects succeeded or
# failed, and time and peak memory per subject (median and max).
#   workflows/slurm/summarise_status.sh RUN_DIR
set -euo pipefail
run_dir="${1:?usage: $0 RUN_DIR}"
shopt -s nullglob
files=("$run_dir"/status/*.tsv)
[ ${#files[@]} -gt 0 ] || { echo "no status files in $run_dir/status" >&2; exit 1; }
cat "${files[@]}" | awk -F'\t' '
  { n++; if ($3 == 0) { ok++; t[ok] = $4; if ($5 != "NA") { m[++nm] = $5 } } else { bad = bad " " $1 } }
  function median(a, k,   i, j, x) { for (i = 2; i <= k; i++) { x = a[i]; for (j = i - 1; j > 0 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x } return k ? a[int((k + 1) / 2)] : "NA" }
  function max(a, k,   i, x) { x = 0; for (i = 1; i <= k; i++) if (a[i] > x) x = a[i]; return k ? x : "NA" }
  END {
    printf "subjects: %d, succeeded: %d, failed: %d\n", n, ok, n - ok
    if (ok) printf "seconds per subject: median %s, max %s\n", median(t, ok), max(t, ok)
    if (nm) printf "peak memory per subject (MB): median %.0f, max %.0f\n", median(m, nm) / 1024, max(m, nm) / 1024
    if (bad != "") printf "failed:%s\n", bad
  }'
