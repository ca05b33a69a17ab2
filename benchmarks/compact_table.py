"""The compact table of an evaluation: one line per method, its mean error at each
horizon and its paired difference [95% interval] and verdict against ``identity`` and
``population-mean`` at each horizon and pooled
(:func:`daninet_pipeline.evaluation.report.compact_table`; the benchmark writes it as
``group_eval_compact.md``). For a table already written, such as those in docs/results/:

    python benchmarks/compact_table.py docs/results/evaluation_2026-12-01_ablations.tsv --horizons 3-5 ">=5"
"""

from __future__ import annotations

import argparse
import sys

from daninet_pipeline.evaluation.evaluate import HORIZONS
from daninet_pipeline.evaluation.report import compact_table, read_rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tsv", help="an evaluation's group_eval.tsv")
    parser.add_argument("--horizons", nargs="+", choices=[h for h, _, _ in HORIZONS],
                        help="default: every horizon the table has")
    parser.add_argument("--measurement", default="tbm", choices=("tbm", "atropos"))
    opts = parser.parse_args(argv)
    rows = read_rows(opts.tsv)
    horizons = opts.horizons or [h for h, _, _ in HORIZONS if (rows["horizon"] == h).any()]
    print(compact_table(rows, horizons, opts.measurement), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
