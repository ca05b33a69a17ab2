"""The evaluation tables from the test subjects an interrupted or running evaluation
has finished (each ``EvaluateSubject`` node's rows in Nipype's cache).

    python benchmarks/evaluation_partial.py DIR OUT_DIR

Writes ``OUT_DIR/group_eval.tsv`` and ``group_eval.md`` as the evaluation stage would,
with a note saying how many test subjects are in it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from daninet_pipeline.evaluation.report import write_evaluation


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root, out = Path(argv[0]), Path(argv[1])
    files = sorted(root.glob("work/evaluation_wf/evaluate_subject/mapflow/*/sub-*_evaluation.tsv"))
    rows = pd.concat([pd.read_csv(f, sep="\t", dtype={"subject": str, "start_session": str,
                                                      "followup_session": str}) for f in files],
                     ignore_index=True)
    per_subject = rows.groupby("subject")["seconds_subject"].first()
    n_fu = rows.groupby(["subject", "start_session", "followup_session"]).ngroups
    note = (f"PARTIAL: the {len(files)} test subjects whose node had finished. Node time "
            f"{per_subject.sum():.0f} s for {n_fu} follow-ups, {per_subject.sum() / n_fu:.1f} s per follow-up.")
    _, md = write_evaluation(rows, out, note=note)
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
