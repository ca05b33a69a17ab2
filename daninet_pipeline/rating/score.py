"""``daninet-rating score``: unblind the raters' answers and summarise them.

Per configuration: the share of first choices among the trials that offered it, with a
bootstrap 95% interval that resamples subjects (all of a subject's trials and raters
together, so repeated follow-ups of one brain are not counted as independent), pooled
over raters and per rater; the mean rank (first choice 1, second choice 2, the others
sharing the remaining ranks: with k candidates each gets ``(3 + k) / 2``, or
``(2 + k) / 2`` when no second choice was given), with the same kind of interval; and
the agreement between raters on the first choice, Fleiss' kappa over the trials every
rater answered, with configurations as categories.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import RatingError
from .order import candidate_order

#: Columns an answers file must have (the page's export).
ANSWER_COLUMNS = ["study_id", "rater", "trial_id", "first", "first_image", "second",
                  "second_image", "seconds"]
_RATER = re.compile(r"[A-Za-z0-9_-]{1,32}")


def fleiss_kappa(counts) -> float:
    """Fleiss' kappa of ``counts`` (items x categories): how many raters put each item in
    each category; every item rated by the same number (>= 2) of raters. NaN when the
    expected agreement is 1 (every rating in one category).

    >>> round(fleiss_kappa([[2, 0], [0, 2]]), 3)
    1.0
    """
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 2 or counts.size == 0 or (counts < 0).any():
        raise ValueError(f"counts must be a non-empty items x categories table of counts, got {counts.shape}")
    per_item = counts.sum(axis=1)
    n = per_item[0]
    if n < 2 or not np.allclose(per_item, n):
        raise ValueError("every item needs the same number (at least 2) of ratings")
    p_cat = counts.sum(axis=0) / counts.sum()
    p_item = ((counts ** 2).sum(axis=1) - n) / (n * (n - 1))
    expected = float((p_cat ** 2).sum())
    if np.isclose(expected, 1.0):
        return float("nan")
    return (float(p_item.mean()) - expected) / (1.0 - expected)


def read_key(study_dir) -> tuple[str, pd.DataFrame]:
    """The study ID and the key table (``key.tsv``) of a study folder."""
    path = Path(study_dir) / "key.tsv"
    if not path.is_file():
        raise RatingError(f"{path}: missing; STUDY_DIR is not a study built by daninet-rating build")
    key = _read_tsv(path)
    need = {"study_id", "trial_id", "subject", "role", "position", "image_id", "configuration"}
    if not need <= set(key.columns) or key.empty:
        raise RatingError(f"{path}: not a study key (columns {', '.join(sorted(need))} needed)")
    ids = key["study_id"].unique()
    if len(ids) != 1:
        raise RatingError(f"{path}: more than one study ID ({', '.join(ids)})")
    return str(ids[0]), key


def _read_tsv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise RatingError(f"{path}: cannot be read as a TSV table ({str(err).splitlines()[0]})") from None
    except OSError as err:
        raise RatingError(f"{path}: cannot be read ({err.strerror})") from None


def _candidates_by_trial(key: pd.DataFrame) -> dict[str, list[tuple[str, str]]]:
    """trial ID -> [(image ID, configuration)] in the built order (``position``)."""
    cands = key[key["role"] == "candidate"].copy()
    cands["position"] = cands["position"].astype(int)
    return {tid: list(zip(g.sort_values("position")["image_id"], g.sort_values("position")["configuration"]))
            for tid, g in cands.groupby("trial_id")}


def read_answers(path, study_id: str, key: pd.DataFrame) -> pd.DataFrame:
    """One rater's exported answers, checked against the study and unblinded.

    Returns one row per answered trial: ``rater``, ``trial_id``, ``subject``,
    ``first``/``second`` (configurations; second may be ""), ``offered`` (the trial's
    configurations, a tuple), ``seconds``.
    """
    path = Path(path)
    table = _read_tsv(path)
    missing = [c for c in ANSWER_COLUMNS if c not in table.columns]
    if missing:
        raise RatingError(f"{path}: not an answers file of daninet-rating (no column {', '.join(missing)})")
    if table.empty:
        raise RatingError(f"{path}: no answers")
    studies = sorted(set(table["study_id"]))
    if studies != [study_id]:
        raise RatingError(f"{path}: answers of study {', '.join(studies)}, not of this study ({study_id})")
    raters = sorted(set(table["rater"]))
    if len(raters) != 1 or not _RATER.fullmatch(raters[0]):
        raise RatingError(f"{path}: one valid rater ID expected, found {', '.join(raters) or 'none'}")
    rater = raters[0]
    trials = _candidates_by_trial(key)
    subjects = dict(zip(key["trial_id"], key["subject"]))
    rows = []
    for line, rec in enumerate(table.itertuples(index=False), start=2):
        where = f"{path}, line {line}"
        if rec.trial_id not in trials:
            raise RatingError(f"{where}: trial {rec.trial_id!r} is not in this study")
        cands = trials[rec.trial_id]
        shown = [cands[k] for k in candidate_order(study_id, rater, rec.trial_id, len(cands))]
        picked = []
        for column, image_column, optional in (("first", "first_image", False), ("second", "second_image", True)):
            letter, image = getattr(rec, column).strip(), getattr(rec, image_column).strip()
            if not letter and optional:
                picked.append("")
                continue
            index = ord(letter) - ord("A") if len(letter) == 1 else -1
            if not 0 <= index < len(shown):
                raise RatingError(f"{where}: {column} choice {letter!r} is not one of A..{chr(64 + len(shown))}")
            if image != shown[index][0]:
                raise RatingError(f"{where}: letter {letter} of rater {rater} is not image {image} in "
                                  "this study (edited file, or the page of another build?)")
            picked.append(shown[index][1])
        if picked[1] and picked[1] == picked[0]:
            raise RatingError(f"{where}: the second choice repeats the first")
        try:
            seconds = float(rec.seconds)
        except ValueError:
            raise RatingError(f"{where}: seconds {rec.seconds!r} is not a number") from None
        rows.append({"rater": rater, "trial_id": rec.trial_id, "subject": subjects[rec.trial_id],
                     "first": picked[0], "second": picked[1],
                     "offered": tuple(c for _, c in cands), "seconds": seconds})
    out = pd.DataFrame(rows)
    dup = out["trial_id"].duplicated()
    if dup.any():
        raise RatingError(f"{path}: trial {out.loc[dup, 'trial_id'].iloc[0]} answered twice")
    return out


def long_table(answers: pd.DataFrame) -> pd.DataFrame:
    """One row per (answer, offered configuration): ``picked`` (1 if first choice),
    ``rank`` (1 first, 2 second, the others the mean of the remaining ranks), ``chance``
    (1 / number of candidates)."""
    rows = []
    for rec in answers.itertuples(index=False):
        k = len(rec.offered)
        taken = 1 + bool(rec.second)
        rest = (taken + 1 + k) / 2
        for conf in rec.offered:
            rank = 1.0 if conf == rec.first else 2.0 if conf == rec.second else rest
            rows.append({"rater": rec.rater, "subject": rec.subject, "trial_id": rec.trial_id,
                         "configuration": conf, "picked": float(conf == rec.first), "rank": rank,
                         "chance": 1.0 / k})
    return pd.DataFrame(rows)


def cluster_bootstrap(long: pd.DataFrame, column: str, configurations: list[str], *, n_boot: int,
                      rng: np.random.Generator) -> pd.DataFrame:
    """Mean of ``column`` per configuration with a 95% percentile interval from ``n_boot``
    resamplings of subjects (with replacement). Columns: ``estimate``, ``low``, ``high``."""
    subjects = sorted(long["subject"].unique())
    total = long.pivot_table(index="subject", columns="configuration", values=column, aggfunc="sum")
    count = long.pivot_table(index="subject", columns="configuration", values=column, aggfunc="count")
    total = total.reindex(index=subjects, columns=configurations).fillna(0).to_numpy()
    count = count.reindex(index=subjects, columns=configurations).fillna(0).to_numpy()
    weights = rng.multinomial(len(subjects), np.full(len(subjects), 1 / len(subjects)), size=n_boot)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (weights @ total) / (weights @ count)
        estimate = total.sum(axis=0) / count.sum(axis=0)
    low, high = np.nanpercentile(boot, [2.5, 97.5], axis=0)
    return pd.DataFrame({"estimate": estimate, "low": low, "high": high}, index=configurations)


def study_kappa(answers: pd.DataFrame, configurations: list[str]) -> tuple[float, int]:
    """Fleiss' kappa of the first choices over the trials every rater answered, and the
    number of those trials (NaN with fewer than two raters or no common trial)."""
    raters = sorted(answers["rater"].unique())
    if len(raters) < 2:
        return float("nan"), 0
    per_trial = answers.groupby("trial_id")["rater"].nunique()
    common = per_trial.index[per_trial == len(raters)]
    if not len(common):
        return float("nan"), 0
    picks = answers[answers["trial_id"].isin(common)]
    counts = pd.crosstab(picks["trial_id"], picks["first"]).reindex(columns=configurations, fill_value=0)
    return fleiss_kappa(counts.to_numpy()), len(common)


def summarise(answers: pd.DataFrame, *, study_id: str, n_boot: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """The score table (pooled rows ``rater == "all"``, then one block per rater) and a
    summary (kappa, counts)."""
    if n_boot < 100:
        raise RatingError("--n-boot must be at least 100")
    long = long_table(answers)
    configurations = list(dict.fromkeys(c for offered in answers["offered"] for c in offered))
    rng = np.random.default_rng(seed)
    blocks = []
    for rater, part in [("all", long)] + list(long.groupby("rater")):
        share = cluster_bootstrap(part, "picked", configurations, n_boot=n_boot, rng=rng)
        rank = cluster_bootstrap(part, "rank", configurations, n_boot=n_boot, rng=rng)
        offered = part.groupby("configuration")["picked"].agg(["count", "sum"]).reindex(configurations)
        chance = part.groupby("configuration")["chance"].mean().reindex(configurations)
        blocks.append(pd.DataFrame({
            "study_id": study_id, "rater": rater, "configuration": configurations,
            "offered": offered["count"].fillna(0).astype(int).to_numpy(),
            "first": offered["sum"].fillna(0).astype(int).to_numpy(),
            "share": share["estimate"].to_numpy(), "share_ci_low": share["low"].to_numpy(),
            "share_ci_high": share["high"].to_numpy(), "chance": chance.to_numpy(),
            "mean_rank": rank["estimate"].to_numpy(), "rank_ci_low": rank["low"].to_numpy(),
            "rank_ci_high": rank["high"].to_numpy()}))
    table = pd.concat(blocks, ignore_index=True)
    kappa, kappa_trials = study_kappa(answers, configurations)
    summary = {"StudyID": study_id, "Raters": sorted(answers["rater"].unique().tolist()),
               "Answers": int(len(answers)), "Trials": int(answers["trial_id"].nunique()),
               "Subjects": int(answers["subject"].nunique()),
               "FleissKappa": None if np.isnan(kappa) else round(kappa, 4), "KappaTrials": kappa_trials,
               "MedianSeconds": {r: float(g["seconds"].median()) for r, g in answers.groupby("rater")},
               "Bootstrap": {"Resamples": n_boot, "Seed": seed, "Unit": "subject"}}
    return table, summary


def to_markdown(table: pd.DataFrame, summary: dict) -> str:
    """The printed score table: pooled share, interval, mean rank, and each rater's share."""
    def pct(v):
        return "n/a" if pd.isna(v) else f"{100 * v:.0f}%"

    pooled = table[table["rater"] == "all"]
    raters = summary["Raters"]
    head = ["configuration", "first choices", "share (95% CI)", "chance", "mean rank (95% CI)"] + \
        [f"rater {r}" for r in raters]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rec in pooled.itertuples(index=False):
        per = table[(table["rater"] != "all") & (table["configuration"] == rec.configuration)]
        per = dict(zip(per["rater"], per["share"]))
        cells = [rec.configuration, f"{rec.first}/{rec.offered}",
                 f"{pct(rec.share)} ({pct(rec.share_ci_low)}-{pct(rec.share_ci_high)})", pct(rec.chance),
                 f"{rec.mean_rank:.2f} ({rec.rank_ci_low:.2f}-{rec.rank_ci_high:.2f})"] + \
            [pct(per.get(r)) for r in raters]
        lines.append("| " + " | ".join(cells) + " |")
    kappa = summary["FleissKappa"]
    lines.append("")
    lines.append(f"Study {summary['StudyID']}: {len(raters)} raters, {summary['Answers']} answers, "
                 f"{summary['Trials']} trials of {summary['Subjects']} subjects; Fleiss' kappa "
                 + (f"{kappa:.3f} over {summary['KappaTrials']} trials answered by every rater"
                    if kappa is not None else "n/a (needs two raters with common trials)")
                 + f"; intervals: {summary['Bootstrap']['Resamples']} bootstrap resamplings of subjects.")
    return "\n".join(lines) + "\n"


def plot_shares(table: pd.DataFrame, path: Path) -> Path:
    """Bar plot of the pooled shares with their intervals, each rater's share as a dot and
    the chance level as a dash."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pooled = table[table["rater"] == "all"].reset_index(drop=True)
    x = np.arange(len(pooled))
    fig, ax = plt.subplots(figsize=(1.4 + 1.3 * len(pooled), 3.6), dpi=110)
    err = np.vstack([pooled["share"] - pooled["share_ci_low"], pooled["share_ci_high"] - pooled["share"]])
    ax.bar(x, 100 * pooled["share"], yerr=100 * np.nan_to_num(err), capsize=5, color="#7aa6c2",
           edgecolor="#234", label="pooled (95% CI)")
    per = table[table["rater"] != "all"]
    for i, conf in enumerate(pooled["configuration"]):
        vals = per.loc[per["configuration"] == conf, "share"].to_numpy()
        ax.plot(np.full(len(vals), i) + np.linspace(-0.15, 0.15, len(vals)), 100 * vals, "o",
                color="#c33", ms=4, label="raters" if i == 0 else None)
        ax.plot([i - 0.4, i + 0.4], [100 * pooled["chance"][i]] * 2, "k--", lw=1,
                label="chance" if i == 0 else None)
    ax.set_xticks(x, pooled["configuration"], rotation=20)
    ax.set_ylabel("first choices (%)")
    ax.set_ylim(0, 122)  # room above 100% for the legend
    ax.set_yticks(range(0, 101, 20))
    ax.set_title(f"Study {table['study_id'].iloc[0]}", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def score_study(study_dir, answer_files, *, out_dir=None, n_boot: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, dict, str]:
    """Read the key and the answers, write ``scores.tsv``, ``scores.md``, ``summary.json``
    and ``scores.png`` to ``out_dir`` (default ``STUDY_DIR/results``); return the table,
    the summary and the Markdown text."""
    study_dir = Path(study_dir)
    study_id, key = read_key(study_dir)
    if not answer_files:
        raise RatingError("no answers file given")
    parts, seen = [], {}
    for path in answer_files:
        part = read_answers(path, study_id, key)
        rater = part["rater"].iloc[0]
        if rater in seen:
            raise RatingError(f"{path}: rater {rater} already read from {seen[rater]}")
        seen[rater] = path
        parts.append(part)
    answers = pd.concat(parts, ignore_index=True)
    table, summary = summarise(answers, study_id=study_id, n_boot=n_boot, seed=seed)
    text = to_markdown(table, summary)
    out_dir = Path(out_dir) if out_dir is not None else study_dir / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "scores.tsv", sep="\t", index=False, float_format="%.4f", na_rep="n/a")
    (out_dir / "scores.md").write_text(text)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_shares(table, out_dir / "scores.png")
    return table, summary, text
