"""Predictions of each follow-up from the same starting scan, scored as the field does.

For every test subject, each follow-up is predicted from the **last scan before it**
(the starting scan) by every method: the baselines of
:mod:`~daninet_pipeline.evaluation.baselines` (``identity``, ``population-mean``,
``linear``), each model in ``direct`` and ``change`` mode, and ``oracle`` (the real
follow-up scored as a prediction: the measurement's own error). Each prediction's
regional volume change from the starting scan is measured by TBM and by Atropos
(:mod:`~daninet_pipeline.evaluation.measure`) in the evaluation regions (the demo
data's atrophy regions, :data:`~daninet_pipeline.regions.REGION_GROUPS`) and
compared with the true change: the ground truth of the demo data when the dataset has
it, else the same measurement of the real follow-up. A row's ``error`` is the mean over
regions of |predicted - true fractional change|, with the regions that L_reg supervises
and those it does not also apart. SSIM, PSNR and MAE against the real follow-up inside
its brain mask are kept beside it. Follow-ups whose scanner or field strength differs
from the starting scan's are flagged (``scanner_change``) and reported apart.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ..regions import REGION_GROUPS
from ..data.resources import atlas_labels_on_grid
from . import measure
from .baselines import (IDENTITY, LINEAR, ORACLE, POPULATION_MEAN, PopulationMean, linear_trend,
                        one_t1w_per_session)
from .metrics import data_range_of, mae_in_mask, psnr_in_mask, ssim_in_mask

LOG = logging.getLogger("daninet.evaluation")

HORIZONS = (("<1", 0.0, 1.0), ("1-3", 1.0, 3.0), ("3-5", 3.0, 5.0), (">=5", 5.0, np.inf))
#: simulation modes scored, with the suffix of their method name: ``direct`` is the
#: generator's image (the paper's answer), ``change`` the starting scan plus the
#: generated change from its own age (see ``Simulator.simulate``).
EVAL_MODES = {"direct": "", "change": "-change"}
METHOD_ORDER = (ORACLE, IDENTITY, POPULATION_MEAN, LINEAR)
#: the columns of every row of :func:`score_pair` (each is followed by ``change_<region>``
#: and ``true_<region>`` per evaluation region); the header of an empty table
ROW_COLUMNS = ("subject", "start_session", "followup_session", "start_age", "years_ahead", "horizon",
               "diagnosis", "scanner_change", "scans_up_to_start", "method", "outside_model_ages",
               "measurement", "error", "error_supervised", "error_unsupervised", "ssim", "psnr", "mae",
               "seconds_prediction", "seconds_measurement", "seconds_start_segmentation")


def horizon_of(years: float) -> str:
    """'<1', '1-3', '3-5' or '>=5' for a time ahead in years."""
    for name, lo, hi in HORIZONS:
        if lo <= years < hi:
            return name
    raise ValueError(f"years ahead must be >= 0, got {years}")


def atlas_regions(shape, affine) -> tuple[np.ndarray, dict[str, list[int]]]:
    """Neuromorphometrics labels on a grid and the evaluation regions (name -> label ids)."""
    labels, table = atlas_labels_on_grid(shape, affine)
    ids = dict(zip(table["name"], table["index"]))
    regions = {name: [int(ids[n]) for n in members if n in ids]
               for name, members in REGION_GROUPS.items()}
    return labels, regions


def supervised_regions(l_reg_regions=None) -> set[str]:
    """Evaluation regions with an atlas label that L_reg supervises (default: the
    training configuration's default regions)."""
    if l_reg_regions is None:
        from ..model.config import TrainConfig

        l_reg_regions = TrainConfig().regions
    return {name for name, members in REGION_GROUPS.items() if set(members) & set(l_reg_regions)}


@dataclass
class FollowUp:
    """One follow-up of a test subject and its starting scan, on the template grid."""

    subject: str
    start_session: str
    followup_session: str
    start_age: float
    followup_age: float
    diagnosis: str
    start: str  # pre-processed starting scan
    followup: str  # pre-processed real follow-up
    start_mask: str
    followup_mask: str
    earlier: list[tuple[float, str]] = field(default_factory=list)  # (age, image) up to the start
    scanner_change: bool = False
    true_change: dict[str, float] | None = None  # per region; None: measured on the scans

    @property
    def years(self) -> float:
        return self.followup_age - self.start_age


def _scanner(t1w) -> tuple:
    """(MagneticFieldStrength, Manufacturer) from a raw T1w's JSON sidecar (None if none)."""
    if not isinstance(t1w, str) or not t1w:
        return (None, None)
    sidecar = Path(t1w.replace(".nii.gz", ".json").replace(".nii", ".json"))
    if not sidecar.is_file():
        return (None, None)
    meta = json.loads(sidecar.read_text())
    return (meta.get("MagneticFieldStrength"), meta.get("Manufacturer"))


def ground_truth_volumes(bids_dir) -> pd.DataFrame | None:
    """True regional volumes of the demo dataset: rows (subject, session), one column per
    region (template space, mm^3); None for a dataset without them."""
    path = Path(bids_dir) / "derivatives" / "ground_truth" / "regional_volumes.tsv"
    if not path.is_file():
        return None
    vols = pd.read_csv(path, sep="\t")
    vols["subject"] = vols["participant_id"].str[4:]
    vols["session"] = vols["session_id"].str[4:]
    return vols.pivot_table(index=["subject", "session"], columns="region", values="volume_template_mm3")


def followup_pairs(sessions: pd.DataFrame, split: pd.DataFrame | None = None, *, splits=("test",),
                   truth: pd.DataFrame | None = None, min_years: float = 0.0) -> list[FollowUp]:
    """Every follow-up of the chosen splits' subjects with the last scan before it (one
    T1w per session, :func:`~daninet_pipeline.evaluation.baselines.one_t1w_per_session`);
    with ``min_years``, only those at least that many years after their starting scan.

    ``sessions``: the group level's table (``subject``, ``session``, ``age``,
    ``diagnosis``, ``t1w``, ``preproc``, ``mask``). The diagnosis is the starting scan's
    (else the subject's first known one, else CN). ``truth``:
    :func:`ground_truth_volumes`, for the true change.
    """
    chosen = set(sessions["subject"]) if split is None else set(split.loc[split["split"].isin(splits), "subject"])
    out = []
    chosen_sessions = one_t1w_per_session(sessions[sessions["subject"].isin(chosen)])
    for sub, group in chosen_sessions.groupby("subject", sort=True):
        group = group.reset_index(drop=True)
        known = [d for d in group["diagnosis"] if isinstance(d, str) and d]
        for k in range(1, len(group)):
            start, fu = group.iloc[k - 1], group.iloc[k]
            if float(fu["age"]) - float(start["age"]) < min_years:
                continue
            dx = start["diagnosis"] if isinstance(start["diagnosis"], str) and start["diagnosis"] else (
                known[0] if known else "CN")
            change = None
            if truth is not None and (sub, start["session"]) in truth.index and (sub, fu["session"]) in truth.index:
                change = (truth.loc[(sub, fu["session"])] / truth.loc[(sub, start["session"])] - 1.0).to_dict()
            out.append(FollowUp(
                sub, start["session"], fu["session"], float(start["age"]), float(fu["age"]), dx,
                start["preproc"], fu["preproc"], start["mask"], fu["mask"],
                earlier=[(float(r["age"]), r["preproc"]) for _, r in group.iloc[:k].iterrows()],
                scanner_change=_scanner(start.get("t1w")) != _scanner(fu.get("t1w")),
                true_change=change))
    return out


def _load(path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj, dtype=np.float32)


class ModelPredictor:
    """A trained model's predictions of a follow-up, in each mode; with its configured
    transfer steps, a copy is first fine-tuned on the subject's scans up to the start."""

    def __init__(self, name: str, model_file, modes=tuple(EVAL_MODES), *, transfer: bool = True):
        """``transfer=False`` scores the model without its configured transfer step (the
        group level's quick evaluation; the benchmark keeps it)."""
        from ..model.simulate import Simulator

        self.name, self.model_file, self.modes = name, str(model_file), tuple(modes)
        self.sim = Simulator.load(model_file, device="cpu")
        self.age_span = self.sim.age_span
        self.configured_transfer_steps = int(self.sim.cfg.transfer_steps)
        self.transfer_steps = self.configured_transfer_steps if transfer else 0

    def __getstate__(self):
        # sent to another process as its file and settings, and loaded there again
        state = dict(self.__dict__)
        del state["sim"]
        return state

    def __setstate__(self, state):
        from ..model.simulate import Simulator

        self.__dict__.update(state)
        self.sim = Simulator.load(self.model_file, device="cpu")

    def predict(self, pair: FollowUp, start: np.ndarray) -> dict[str, np.ndarray]:
        sim = self.sim
        if self.transfer_steps > 0:
            from ..model.transfer import transfer

            scans = [{"image": nib.load(path), "age": age, "diagnosis": pair.diagnosis}
                     for age, path in pair.earlier]
            sim = transfer(sim, scans, steps=self.transfer_steps)
        img = nib.load(pair.start)
        return {self.name + EVAL_MODES[mode]: np.asarray(
                    sim.simulate(img, pair.start_age, pair.diagnosis, [pair.followup_age], mode=mode)[0].dataobj,
                    np.float32)
                for mode in self.modes}


def outside_ages(pair: FollowUp, age_span) -> bool:
    """Whether ``pair``'s starting or follow-up age lies outside ``age_span`` (years, a
    model's age groups: it simulates such an age as its end group); False for None."""
    return age_span is not None and not (age_span[0] <= pair.start_age and pair.followup_age <= age_span[1])


def predictions_for(pair: FollowUp, *, population_mean: PopulationMean | None = None,
                    models=(), linear: bool = True, seconds: dict | None = None,
                    outside: dict | None = None) -> dict[str, np.ndarray]:
    """Every method's prediction of ``pair``'s follow-up (``linear`` only with two or
    more scans up to the start). ``seconds`` (if given) gets each method's wall time,
    ``outside`` (if given) each model method's :func:`outside_ages` (a predictor's
    ``age_span``; one without, such as a stand-in, is never outside)."""
    seconds = {} if seconds is None else seconds
    outside = {} if outside is None else outside
    start = _load(pair.start)
    preds = {ORACLE: _load(pair.followup), IDENTITY: start}
    seconds.update({ORACLE: 0.0, IDENTITY: 0.0})
    if population_mean is not None:
        t0 = time.perf_counter()
        preds[POPULATION_MEAN] = population_mean.predict(start, pair.diagnosis, pair.years)
        seconds[POPULATION_MEAN] = time.perf_counter() - t0
    t0 = time.perf_counter()
    trend = linear_trend([(a, start if p == pair.start else _load(p)) for a, p in pair.earlier],
                         pair.start_age, pair.followup_age) if linear else None
    if trend is not None:
        preds[LINEAR] = trend
        seconds[LINEAR] = time.perf_counter() - t0
    for model in models:
        t0 = time.perf_counter()
        made = model.predict(pair, start)
        # a model's call (its transfer, then each mode's simulation) shared equally by its rows
        seconds.update({name: (time.perf_counter() - t0) / max(len(made), 1) for name in made})
        outside.update({name: outside_ages(pair, getattr(model, "age_span", None)) for name in made})
        preds.update(made)
    return preds


def score_pair(pair: FollowUp, predictions: dict[str, np.ndarray], *, measurements=measure.MEASUREMENTS,
               regions_cache: dict | None = None, supervised: set[str] | None = None,
               syn_iterations=None, syn_voxel_mm=None, seconds: dict | None = None,
               outside: dict | None = None) -> list[dict]:
    """Rows (one per method x measurement) scoring ``predictions`` of ``pair``; TBM with
    ``syn_iterations`` per level on a grid of ``syn_voxel_mm`` at least
    (:func:`~daninet_pipeline.evaluation.measure.tbm_change`).

    Each row has ``seconds_prediction`` (the method's prediction, from ``seconds``) and
    ``seconds_measurement`` (its regional change by that measurement); the starting
    scan's tissue segmentation, shared by every row, is ``seconds_start_segmentation``.
    ``outside_model_ages`` is True for a model's row whose ages lie outside its age
    groups (``outside``, from :func:`predictions_for`)."""
    seconds, outside = seconds or {}, outside or {}
    ref_img = nib.load(pair.followup)
    start, real = predictions[IDENTITY], predictions[ORACLE]
    start_mask = _load(pair.start_mask) > 0.5
    fu_mask = _load(pair.followup_mask) > 0.5
    key = (real.shape, tuple(np.round(ref_img.affine, 4).ravel()))
    cache = {} if regions_cache is None else regions_cache
    if key not in cache:
        cache[key] = atlas_regions(real.shape, ref_img.affine)
    labels, regions = cache[key]
    regions = {k: v for k, v in regions.items() if v}
    supervised = supervised_regions() if supervised is None else supervised
    zooms = tuple(float(z) for z in ref_img.header.get_zooms()[:3])
    data_range = data_range_of(real, fu_mask)
    image_scores = {m: {"ssim": ssim_in_mask(p, real, fu_mask, data_range), "psnr": psnr_in_mask(p, real, fu_mask, data_range),
                        "mae": mae_in_mask(p, real, fu_mask)} for m, p in predictions.items()}
    t0 = time.perf_counter()
    # the starting scan's tissue: TBM's weights, on TBM's grid unless Atropos compares
    # other images' tissue with it (then on the images' own)
    posteriors = measure.tissue_posteriors(start, measure.dilated(start_mask), zooms,
                                           voxel_mm=None if "atropos" in measurements else syn_voxel_mm)
    seconds_segmentation = time.perf_counter() - t0
    rows = []
    for meas in measurements:
        kwargs = {"start_posteriors": posteriors}
        if meas == "tbm":
            kwargs.update(iterations=syn_iterations, voxel_mm=syn_voxel_mm)

        def change_of(image, meas=meas, kwargs=kwargs):
            return measure.measure_change(meas, start, image, start_mask, labels, regions, zooms, **kwargs)

        t0 = time.perf_counter()
        measured_real = change_of(real)
        seconds_real = time.perf_counter() - t0
        truth = ({k: v for k, v in pair.true_change.items() if k in regions} if pair.true_change is not None
                 else measured_real)
        for method, pred in predictions.items():
            t0 = time.perf_counter()
            got = measured_real if method == ORACLE else change_of(pred)
            seconds_measurement = seconds_real if method == ORACLE else time.perf_counter() - t0
            err = {k: abs(got[k] - truth[k]) for k in truth if np.isfinite(got.get(k, np.nan))}
            sup = [v for k, v in err.items() if k in supervised]
            uns = [v for k, v in err.items() if k not in supervised]
            rows.append({
                "subject": pair.subject, "start_session": pair.start_session,
                "followup_session": pair.followup_session, "start_age": round(pair.start_age, 2),
                "years_ahead": round(pair.years, 3), "horizon": horizon_of(pair.years),
                "diagnosis": pair.diagnosis, "scanner_change": bool(pair.scanner_change),
                "scans_up_to_start": len(pair.earlier), "method": method,
                "outside_model_ages": bool(outside.get(method, False)), "measurement": meas,
                "error": float(np.mean(list(err.values()))) if err else np.nan,
                "error_supervised": float(np.mean(sup)) if sup else np.nan,
                "error_unsupervised": float(np.mean(uns)) if uns else np.nan,
                **image_scores[method],
                "seconds_prediction": round(float(seconds.get(method, np.nan)), 2),
                "seconds_measurement": round(seconds_measurement, 2),
                "seconds_start_segmentation": round(seconds_segmentation, 2),
                **{f"change_{k}": round(float(got.get(k, np.nan)), 6) for k in truth},
                **{f"true_{k}": round(float(v), 6) for k, v in truth.items()},
            })
    return rows


def evaluate_pairs(pairs: list[FollowUp], *, population_mean=None, models=(),
                   measurements=measure.MEASUREMENTS, syn_iterations=None, syn_voxel_mm=None,
                   linear: bool = True) -> pd.DataFrame:
    """:func:`score_pair` over ``pairs``; one row per follow-up, method and measurement."""
    rows, cache = [], {}
    supervised = supervised_regions()
    for pair in pairs:
        t0, seconds, outside = time.perf_counter(), {}, {}
        preds = predictions_for(pair, population_mean=population_mean, models=models, linear=linear,
                                seconds=seconds, outside=outside)
        new = score_pair(pair, preds, measurements=measurements, regions_cache=cache, supervised=supervised,
                         syn_iterations=syn_iterations, syn_voxel_mm=syn_voxel_mm, seconds=seconds,
                         outside=outside)
        rows += new
        LOG.info("evaluated sub-%s ses-%s -> ses-%s (%.1f years, %d methods) in %.0f s: predictions %.0f s, "
                 "measurements %.0f s, starting scan's segmentation %.0f s", pair.subject, pair.start_session,
                 pair.followup_session, pair.years, len(preds), time.perf_counter() - t0,
                 sum(seconds.values()), sum(r["seconds_measurement"] for r in new),
                 new[0]["seconds_start_segmentation"] if new else 0.0)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(ROW_COLUMNS))


#: a worker process's models (:func:`_evaluate_in_worker`)
_WORKER_MODELS: list = []


def _start_worker(models, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _WORKER_MODELS[:] = models


def _evaluate_in_worker(pair: FollowUp, kwargs: dict) -> pd.DataFrame:
    return evaluate_pairs([pair], models=_WORKER_MODELS, **kwargs)


def evaluate_pairs_in_processes(pairs: list[FollowUp], *, models=(), nprocs: int = 1, **kwargs) -> pd.DataFrame:
    """:func:`evaluate_pairs` with the follow-ups shared among ``nprocs`` processes (each
    loads the models once; the rows come back in the order of ``pairs``). The models go
    to the processes pickled: :class:`ModelPredictor` sends its file's path."""
    if nprocs <= 1 or len(pairs) <= 1:
        return evaluate_pairs(pairs, models=models, **kwargs)
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    nprocs = min(nprocs, len(pairs))
    threads = max(1, (os.cpu_count() or 1) // nprocs)
    # spawned, not forked: a forked copy of a process that has run torch's thread pool can hang
    t0, parts = time.perf_counter(), [None] * len(pairs)
    with ProcessPoolExecutor(nprocs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_start_worker, initargs=(list(models), threads)) as pool:
        futures = {pool.submit(_evaluate_in_worker, pair, kwargs): i for i, pair in enumerate(pairs)}
        for done, future in enumerate(as_completed(futures), 1):
            i = futures[future]
            parts[i] = future.result()
            LOG.info("evaluated %d of %d follow-ups (sub-%s ses-%s -> ses-%s) after %.0f s", done, len(pairs),
                     pairs[i].subject, pairs[i].start_session, pairs[i].followup_session, time.perf_counter() - t0)
    return pd.concat(parts, ignore_index=True)


def choose_on_validation(candidates, sessions: pd.DataFrame, split: pd.DataFrame, *,
                         truth: pd.DataFrame | None = None, measurement: str = "tbm",
                         syn_iterations=None, syn_voxel_mm=None, nprocs: int = 1) -> tuple[str, pd.Series]:
    """The checkpoint to report: of ``candidates`` (predictors such as
    :class:`ModelPredictor`, one per checkpoint, with distinct names), the one whose
    change-mode prediction has the lowest mean regional change error on the
    **validation** split's follow-ups. The test split is never read. Returns the chosen
    name and every candidate's validation error. TBM as in :func:`score_pair`; the
    follow-ups shared among ``nprocs`` processes (:func:`evaluate_pairs_in_processes`)."""
    pairs = followup_pairs(sessions, split, splits=("validation",), truth=truth)
    if not pairs:
        raise ValueError("the validation split has no follow-up: cannot choose a checkpoint")
    LOG.info("choosing among %d checkpoints on %d validation follow-ups of %d subjects (%d processes)",
             len(candidates), len(pairs), len({p.subject for p in pairs}), max(1, min(nprocs, len(pairs))))
    rows = evaluate_pairs_in_processes(pairs, models=list(candidates), nprocs=nprocs, measurements=(measurement,),
                                       syn_iterations=syn_iterations, syn_voxel_mm=syn_voxel_mm, linear=False)
    names = {c.name + EVAL_MODES["change"]: c.name for c in candidates}
    scores = rows[rows["method"].isin(names)].groupby("method")["error"].mean().rename(index=names)
    return str(scores.idxmin()), scores
