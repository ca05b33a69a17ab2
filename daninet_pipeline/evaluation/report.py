"""The evaluation's tables: mean errors per method and horizon, paired comparisons
against ``identity`` and ``population-mean`` with bootstrap 95% intervals over test
subjects (by horizon and by diagnosis), the declared primary comparison and a verdict
line per comparison. Follow-ups across a scanner or field-strength change are reported
apart (their intensity-based scores are confounded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .baselines import IDENTITY, LINEAR, ORACLE, POPULATION_MEAN
from .evaluate import HORIZONS, METHOD_ORDER, ROW_COLUMNS
from .stats import PRIMARY, TOO_FEW, compare, comparison_table

REFERENCES = (IDENTITY, POPULATION_MEAN)


def _method_key(method: str) -> tuple:
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)


def summarise(rows: pd.DataFrame, measurement: str | None = None) -> pd.DataFrame:
    """Mean error (all, L_reg-supervised and unsupervised regions) and image scores per
    method and horizon, with the numbers of follow-ups and subjects."""
    if measurement is not None:
        rows = rows[rows["measurement"] == measurement]
    cols = [c for c in ("error", "error_supervised", "error_unsupervised", "ssim", "psnr", "mae") if c in rows]
    keys = ["measurement", "horizon", "method"]
    summary = rows.groupby(keys)[cols].mean().join(rows.groupby(keys).agg(
        n=("subject", "size"), subjects=("subject", "nunique"))).reset_index()
    order = {name: k for k, (name, _, _) in enumerate(HORIZONS)}
    summary["_h"] = summary["horizon"].map(order)
    summary["_m"] = summary["method"].map(_method_key)
    return summary.sort_values(["measurement", "_h", "_m"]).drop(columns=["_h", "_m"]).reset_index(drop=True)


def _fmt(v, digits=4) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def summary_markdown(summary: pd.DataFrame) -> str:
    lines = ["| measurement | years ahead | method | follow-ups | subjects | error | supervised regions | "
             "unsupervised regions | SSIM | MAE |", "|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in summary.iterrows():
        lines.append(f"| {r['measurement']} | {r['horizon']} | {r['method']} | {int(r['n'])} | {int(r['subjects'])} | "
                     f"{_fmt(r['error'])} | {_fmt(r.get('error_supervised'))} | {_fmt(r.get('error_unsupervised'))} | "
                     f"{_fmt(r['ssim'])} | {_fmt(r['mae'])} |")
    return "\n".join(lines) + "\n"


def comparisons_markdown(table: pd.DataFrame) -> str:
    lines = ["| stratum | method | against | subjects | follow-ups | mean difference | 95% interval | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['stratum']} | {r['method']} | {r['reference']} | {r['n_subjects']} | {r['n_followups']} | "
                     f"{_fmt(r['difference'])} | [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] | {r['verdict']} |")
    return "\n".join(lines) + "\n"


def model_methods(rows: pd.DataFrame) -> list[str]:
    """The methods that are not baselines or the oracle, in order."""
    fixed = {ORACLE, IDENTITY, POPULATION_MEAN, LINEAR}
    return sorted((m for m in rows["method"].unique() if m not in fixed), key=_method_key)


def verdict_lines(rows: pd.DataFrame, measurement: str = "tbm") -> list[str]:
    """One line per model x reference x horizon: better / worse / not distinguishable."""
    rows = rows[(rows["measurement"] == measurement) & ~rows["scanner_change"].astype(bool)]
    lines = []
    for method in model_methods(rows):
        for ref in REFERENCES:
            for horizon, _, _ in HORIZONS:
                group = rows[rows["horizon"] == horizon]
                if not ((group["method"] == method).any() and (group["method"] == ref).any()):
                    lines.append(f"- {method} vs {ref}, {horizon} years: no follow-up")
                    continue
                c = compare(group, method, ref)
                lines.append(f"- {method} vs {ref}, {horizon} years: **{c['verdict']}** (difference "
                             f"{_fmt(c['difference'])}, 95% interval [{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}], "
                             f"{c['n_subjects']} subjects, {c['n_followups']} follow-ups)")
    return lines


def primary_line(rows: pd.DataFrame, primary=PRIMARY) -> str:
    """The declared primary comparison, with its interval and verdict."""
    sel = rows[(rows["measurement"] == primary["measurement"]) & rows["horizon"].isin(primary["horizons"])
               & ~rows["scanner_change"].astype(bool)]
    what = (f"`{primary['method']}` against `{primary['reference']}`, regional volume change error "
            f"({primary['measurement'].upper()}), horizons {' and '.join(primary['horizons'])} years")
    if not ((sel["method"] == primary["method"]).any() and (sel["method"] == primary["reference"]).any()):
        return f"Primary comparison ({what}): not available in this run (no such follow-up or no such model)."
    c = compare(sel, primary["method"], primary["reference"], metric=primary["metric"])
    return (f"Primary comparison ({what}): **{c['verdict']}**: mean difference {_fmt(c['difference'])} "
            f"(95% interval [{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}]; {c['n_subjects']} subjects, "
            f"{c['n_followups']} follow-ups).")


def outside_line(rows: pd.DataFrame, primary=PRIMARY) -> str:
    """How many same-scanner follow-ups lie outside a model's ages (rows flagged
    ``outside_model_ages``: the model simulated them at its end age group), and the primary
    comparison without them; "" for a table without the column."""
    if "outside_model_ages" not in rows:
        return ""
    same = rows[~rows["scanner_change"].astype(bool)]
    keys = list(FOLLOWUP)
    flags = same["outside_model_ages"].eq(True)  # a row from a run before the column (NaN after a join): not flagged
    flagged = same.loc[flags, keys].drop_duplicates()
    n = same.groupby(keys).ngroups
    if flagged.empty:
        return f"No same-scanner follow-up lies outside a model's ages (the span of its age groups; {n} follow-ups)."
    outside = same.set_index(keys).index.isin(list(map(tuple, flagged.to_numpy())))
    models = sorted(set(same.loc[flags, "method"]), key=_method_key)
    without = primary_line(same[~outside], primary)
    return (f"{len(flagged)} of {n} same-scanner follow-ups lie outside a model's ages ({', '.join(models)}: the "
            "span of its age groups; it simulates such an age as its end group; column `outside_model_ages`). "
            f"Without them, the {without[0].lower()}{without[1:]}")


def compact_table(rows: pd.DataFrame, horizons=("3-5", ">=5"), measurement: str = "tbm") -> str:
    """One line per method (same scanner, ``measurement``): its mean error at each of
    ``horizons``, then its paired difference [95% interval] and verdict against
    ``identity`` and ``population-mean`` at each horizon and at all of them pooled
    (the ablation table of docs/group_and_simulation.md). Markdown."""
    rows = rows[(rows["measurement"] == measurement) & ~rows["scanner_change"].astype(bool)]
    strata = [(h, rows[rows["horizon"] == h]) for h in horizons]
    if len(horizons) > 1:
        strata.append((f"{', '.join(horizons)} pooled", rows[rows["horizon"].isin(horizons)]))
    refs = [r for r in REFERENCES if (rows["method"] == r).any()]

    def cell(method, ref, group) -> str:
        if method in (ref, ORACLE) or (method, ref) == (IDENTITY, POPULATION_MEAN):
            return ""
        c = compare(group, method, ref)
        if c["verdict"] == TOO_FEW:
            return f"{TOO_FEW} (n = {c['n_subjects']})"
        return f"{c['difference']:+.4f} [{c['ci_low']:.4f}, {c['ci_high']:.4f}] {c['verdict']}"

    head = ([f"mean error {h} y" for h in horizons]
            + [f"vs {ref}, {label}" for ref in refs for label, _ in strata])
    lines = ["| method | " + " | ".join(head) + " |", "|---" * (1 + len(head)) + "|"]
    order = list(dict.fromkeys(rows["method"]))  # the models in the order the run scored them
    for method in sorted(order, key=lambda m: (_method_key(m)[0], order.index(m))):
        errors = [_fmt(g.loc[g["method"] == method, "error"].mean()) for _, g in strata[:len(horizons)]]
        cells = [cell(method, ref, g) for ref in refs for _, g in strata]
        lines.append(f"| `{method}` | " + " | ".join(errors + cells) + " |")
    followups = rows.drop_duplicates(list(FOLLOWUP))
    counts = "; ".join(f"{h} years: {int((followups['horizon'] == h).sum())} follow-ups of "
                       f"{followups.loc[followups['horizon'] == h, 'subject'].nunique()} subjects" for h in horizons)
    return "\n".join(lines) + f"\n\n{measurement.upper()}, same scanner; {counts}.\n"


def measurement_note(rows: pd.DataFrame, syn_iterations=None, syn_voxel_mm=None) -> str:
    """One sentence: the measurements of ``rows``, TBM's SyN setting, and the seconds the
    predictions and the measurements took per follow-up (wall time, from the rows)."""
    from .measure import SYN_ITERATIONS

    iterations = tuple(SYN_ITERATIONS if syn_iterations is None else syn_iterations)
    parts = []
    if "tbm" in set(rows["measurement"]):
        parts.append(f"TBM with SyN iterations {'x'.join(map(str, iterations))} per level "
                     f"({len(iterations)} level{'s' if len(iterations) > 1 else ''}, the last at full resolution"
                     + (f" of a grid of {syn_voxel_mm:g} mm voxels at least: finer images registered on their "
                        "block means" if syn_voxel_mm else "") + ")")
    if "atropos" in set(rows["measurement"]):
        parts.append("Atropos")
    note = "Measured by " + " and ".join(parts) + "."
    if {"seconds_prediction", "seconds_measurement"} <= set(rows.columns):
        keys = ["subject", "start_session", "followup_session"]
        n = rows.groupby(keys).ngroups
        pred = rows.drop_duplicates(keys + ["method"])["seconds_prediction"].sum()
        meas = rows["seconds_measurement"].sum()
        seg = rows.drop_duplicates(keys)["seconds_start_segmentation"].sum()
        note += (f" Time per follow-up (wall, {n} follow-ups): predictions {pred / n:.1f} s, measurements "
                 f"{meas / n:.1f} s, the starting scan's segmentation {seg / n:.1f} s.")
    return note


#: how a table with no follow-up to score begins its one line (tables, model card, CLI)
NOTHING_TO_EVALUATE = "Nothing to evaluate"


def nothing_to_evaluate_line(test_subjects) -> str:
    """The one line of an evaluation without a follow-up to score: which test subjects
    there are (each with a single session), or that the test split is empty."""
    test_subjects = sorted(str(s) for s in test_subjects)
    if not test_subjects:
        return (f"{NOTHING_TO_EVALUATE}: the test split has no subject (too few subjects to split); "
                "the model was trained and written, but not scored.")
    which = (f"test subject sub-{test_subjects[0]} has one session" if len(test_subjects) == 1 else
             f"test subjects sub-{', sub-'.join(test_subjects)}: one session each")
    return (f"{NOTHING_TO_EVALUATE}: no test subject has a follow-up session ({which}); "
            "the model was trained and written, but not scored.")


FOLLOWUP = ("subject", "start_session", "followup_session")


def read_rows(path) -> pd.DataFrame:
    """An evaluation table (``group_eval.tsv`` or one subject's rows), labels kept as text."""
    return pd.read_csv(path, sep="\t", dtype={k: str for k in FOLLOWUP})


def join_runs(rows: pd.DataFrame, extra: pd.DataFrame, *, tolerance: float = 1e-5) -> tuple[pd.DataFrame, float]:
    """One table from two runs on the same test split: ``extra`` (a second run, such as more
    models scored on some of the follow-ups) adds its methods to ``rows``. Both keep only
    ``extra``'s follow-ups, so every comparison of the joined table is paired on the same
    follow-ups and measurements.

    The methods both runs scored (``identity`` and ``oracle`` at least) must agree row by
    row: their largest |difference| of ``error`` is returned, and one over ``tolerance``
    (the runs measured differently: another grid, data or seed) is a ``ValueError``, as is
    a follow-up of ``extra`` that ``rows`` lacks."""
    keys = [*FOLLOWUP, "measurement"]
    have = set(map(tuple, rows[keys].drop_duplicates().to_numpy()))
    wanted = set(map(tuple, extra[keys].drop_duplicates().to_numpy()))
    if wanted - have:
        sub, start, fu, meas = sorted(wanted - have)[0]
        raise ValueError(f"the first run has no {meas} row for sub-{sub} ses-{start} -> ses-{fu}: "
                         "the runs scored different follow-ups")
    shared = sorted(set(rows["method"]) & set(extra["method"]))
    if IDENTITY not in shared or ORACLE not in shared:
        raise ValueError("both runs must score identity and oracle: without them nothing shows they measured alike")
    on = [*keys, "method"]
    kept = rows[rows.set_index(keys).index.isin(list(wanted))]
    both = kept[kept["method"].isin(shared)].merge(extra[extra["method"].isin(shared)], on=on,
                                                   suffixes=("", "_extra"), validate="one_to_one")
    if len(both) != int(extra["method"].isin(shared).sum()):
        raise ValueError("the runs' shared methods do not cover the same rows")
    gap = float((both["error"] - both["error_extra"]).abs().max())
    if not gap <= tolerance:
        raise ValueError(f"the runs measured differently: identity/oracle errors differ by up to {gap:.3g} "
                         f"(over {tolerance:g}); were they run with the same data, grid and measurements?")
    joined = pd.concat([kept, extra[~extra["method"].isin(shared)]], ignore_index=True)
    return joined, gap


def write_evaluation(rows: pd.DataFrame, out_dir, *, note: str = "") -> tuple[Path, Path]:
    """``group_eval.tsv`` (every row) and ``group_eval.md`` (the tables) in ``out_dir``.
    With no row, ``note`` is the whole table's text (:func:`nothing_to_evaluate_line`)
    and the TSV has only its header."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tsv, md = out_dir / "group_eval.tsv", out_dir / "group_eval.md"
    if rows.empty:
        pd.DataFrame(columns=list(dict.fromkeys([*ROW_COLUMNS, *rows.columns]))).to_csv(tsv, sep="\t", index=False)
        md.write_text("\n".join(["# Evaluation on the test split", "", note or NOTHING_TO_EVALUATE + ".", ""]))
        return tsv, md
    rows.to_csv(tsv, sep="\t", index=False, float_format="%.6g")
    same = rows[~rows["scanner_change"].astype(bool)]
    apart = rows[rows["scanner_change"].astype(bool)]
    models = model_methods(rows)
    parts = [
        "# Evaluation on the test split", "",
        "Each follow-up is predicted from the last scan before it by every method. `error` = mean over "
        "the evaluation regions of |predicted - true fractional volume change| (true: the demo data's "
        "ground truth when present, else the measurement of the real follow-up), measured by TBM (ANTsPy "
        "SyN Jacobian) and/or Atropos (see below); `oracle` is the real follow-up scored as a prediction (the "
        "measurement's own error: a smooth prediction can score below it, since the real follow-up carries its "
        "noise); `identity` copies the starting scan; `population-mean` adds the training "
        "subjects' mean change for the diagnosis and interval; `linear` extrapolates the voxel-wise trend "
        "of the scans up to the start (only where there are two or more); `<model>` is the generator's "
        "image, `<model>-change` the starting scan plus the generated change. Differences are "
        "method - reference (negative: the method is closer to the truth), averaged per subject, with "
        "bootstrap 95% intervals resampling test subjects (none below 5 subjects: \"too few subjects\"); a verdict is called only where the interval "
        "excludes 0." + (f" {note}" if note else ""), "",
        primary_line(rows), "",
        f"Follow-ups: {same.groupby(['subject', 'start_session', 'followup_session']).ngroups} on the same "
        f"scanner, {apart.groupby(['subject', 'start_session', 'followup_session']).ngroups} across a scanner "
        f"or field-strength change (reported apart below); test subjects: {rows['subject'].nunique()}. "
        + outside_line(rows), "",
        "## Mean errors (same scanner)", "", summary_markdown(summarise(same)) if not same.empty else "(none)\n",
    ]
    for meas in sorted(same["measurement"].unique()):
        sub = same[same["measurement"] == meas]
        parts += [f"## Paired differences against identity and population-mean ({meas}), by horizon", "",
                  comparisons_markdown(comparison_table(sub, models + [LINEAR, POPULATION_MEAN], REFERENCES,
                                                        by=("horizon",))),
                  f"## Paired differences ({meas}), by diagnosis of the starting scan", "",
                  comparisons_markdown(comparison_table(sub, models, REFERENCES, by=("diagnosis",)))]
    parts += ["## Verdicts (TBM, same scanner)", "", *verdict_lines(rows), ""]
    if not apart.empty:
        parts += ["## Follow-ups across a scanner or field-strength change", "",
                  summary_markdown(summarise(apart))]
    md.write_text("\n".join(parts) + "\n")
    return tsv, md
