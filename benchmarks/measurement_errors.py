"""The measurements' own error per region, from an evaluation's ``oracle`` rows.

    python benchmarks/measurement_errors.py OUT/models/evaluation/group_eval.tsv

The oracle is the real follow-up scored as a prediction, so its per-region error is the
error of the measurement (TBM or Atropos) against the demo data's ground truth. Prints a
Markdown table: mean and 90th percentile of |measured - true fractional change| per
region and measurement, with the number of follow-ups and the mean |true change|.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd


def measurement_errors(rows: pd.DataFrame) -> pd.DataFrame:
    oracle = rows[rows["method"] == "oracle"]
    regions = [c[len("true_"):] for c in oracle.columns if c.startswith("true_")]
    out = []
    for meas, group in oracle.groupby("measurement"):
        for region in regions:
            err = (group[f"change_{region}"] - group[f"true_{region}"]).abs().dropna()
            if err.empty:
                continue
            out.append({"measurement": meas, "region": region, "follow-ups": len(err),
                        "mean |true change|": group[f"true_{region}"].abs().mean(),
                        "mean error": err.mean(), "90th percentile": float(np.percentile(err, 90)),
                        "mean signed error": (group[f"change_{region}"] - group[f"true_{region}"]).mean()})
    return pd.DataFrame(out)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    table = measurement_errors(pd.read_csv(argv[0], sep="\t"))
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "---|" * len(table.columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
