"""``daninet-rating build``: a self-contained, blinded study folder.

Layout of ``STUDY_DIR``::

    rater/            what raters receive: open rater/index.html from disk
      index.html      the page (study data and code inlined; no network)
      img/<id>_<view>.png
      README.txt
    key.tsv           the blinding key: trial and image IDs -> subject, session, configuration
    study.json        how the study was built (options, inputs, version)

Trial IDs, image IDs and the study ID are random tokens; the candidates of a trial are
listed in a random order (kept in ``key.tsv`` as ``position``), and the page shuffles
them again per rater (:mod:`~daninet_pipeline.rating.order`), so nothing under ``rater/``
names or encodes a configuration, a subject or a file.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import RatingError
from .order import ORDER_JS
from .render import VIEWS, load_ras, pixel_aspect, render_scale, save_png, trial_layout, view_strip
from .trials import Trial, find_trials, sample_trials

LOG = logging.getLogger("daninet.rating")

#: Columns of ``key.tsv``: one row per image shown (``role`` real or candidate).
KEY_COLUMNS = ["study_id", "trial_id", "subject", "session", "age", "role", "position",
               "image_id", "configuration", "file"]
#: Size on screen (CSS px) of the largest side of a trial's slices; the others keep its scale.
FRAME_PX = 170

_RATER_README = """Blinded rating study {study_id}

Open index.html in a web browser (double-click it; no internet connection is needed).
Enter your rater ID, answer every trial, then press "Export answers" and send the
downloaded answers_<your ID>.tsv to the study's organiser. Your answers are kept in this
browser if you close the page, so you can come back to it later.
"""


def _token(used: set, nbytes: int) -> str:
    while True:
        tok = secrets.token_hex(nbytes)
        if tok not in used:
            used.add(tok)
            return tok


def _render_trial(trial: Trial, img_dir: Path, ids: list[str], n_slices: int) -> dict:
    """Write the strips of the real follow-up (``ids[0]``) and the candidates (``ids[1:]``,
    in the order of ``trial.candidates``); return the page's description of the views."""
    real, zooms = load_ras(trial.followup)
    mask = None
    if trial.mask is not None and trial.mask.is_file():
        mask, _ = load_ras(trial.mask)
    layout = trial_layout(real, mask, zooms, n_slices=n_slices)
    images = [(ids[0], trial.followup, real)]
    for cand, image_id in zip(trial.candidates, ids[1:]):
        data, cand_zooms = load_ras(cand.image)
        if data.shape != real.shape or not np.allclose(cand_zooms, zooms, atol=1e-3):
            raise RatingError(f"{cand.image}: grid {data.shape} does not match the real follow-up "
                              f"{trial.followup} {real.shape}")
        images.append((image_id, cand.image, data))
    views, scale = {}, render_scale(layout, FRAME_PX)
    for view in VIEWS:
        for image_id, _, data in images:
            strip = view_strip(data, layout, view, scale=scale)
            save_png(strip, img_dir / f"{image_id}_{view}.png")
        n = len(layout.slices[view])
        views[view] = {"n": n, "w": int(strip.shape[1]), "h": int(strip.shape[0] // n),
                       "aspect": round(pixel_aspect(layout, view), 4)}
    return views


def page_html(study: dict) -> str:
    """The rater's page with the study's data (IDs, ages, image sizes) and code inlined."""
    template = resources.files("daninet_pipeline.rating").joinpath("page.html").read_text("utf-8")
    data = json.dumps(study, separators=(",", ":")).replace("</", "<\\/")
    return template.replace("/*STUDY_DATA*/", data).replace("/*ORDER_JS*/", ORDER_JS)


def build_study(output_dir, study_dir, *, models=None, subjects=None, n_trials=None, seed=None,
                bids_dir=None, n_slices: int = 24, one_per_subject: bool = False) -> dict:
    """Build the study folder ``study_dir`` from the derivatives in ``output_dir``.

    Returns the content of ``study.json`` (study ID, configurations, number of trials, ...).
    ``seed`` draws the trials and their build order (a random one is drawn and recorded
    when None); IDs are always random. ``one_per_subject``: one follow-up per subject, so
    that ``identity`` is not the candidate that stays the same across a subject's trials.
    """
    output_dir, study_dir = Path(output_dir).resolve(), Path(study_dir).resolve()
    if study_dir.exists() and (not study_dir.is_dir() or any(study_dir.iterdir())):
        raise RatingError(f"{study_dir}: exists and is not empty; choose a new STUDY_DIR")
    if n_slices < 1:
        raise RatingError("--slices must be at least 1")
    seed = int(seed) if seed is not None else secrets.randbits(32)
    rng = np.random.default_rng(seed)
    trials = sample_trials(find_trials(output_dir, bids_dir=bids_dir, models=models, subjects=subjects),
                           n_trials, rng, one_per_subject=one_per_subject)
    configurations = list(dict.fromkeys(c.configuration for t in trials for c in t.candidates))

    used: set = set()
    study_id = _token(used, 6)
    tmp = study_dir.with_name(f".{study_dir.name}.partial-{secrets.token_hex(4)}")
    img_dir = tmp / "rater" / "img"
    img_dir.mkdir(parents=True)
    try:
        page_trials, key_rows = [], []
        for number, trial in enumerate(trials, 1):
            trial_id = _token(used, 4)
            trial.candidates = [trial.candidates[i] for i in rng.permutation(len(trial.candidates))]
            ids = [_token(used, 8) for _ in range(len(trial.candidates) + 1)]
            views = _render_trial(trial, img_dir, ids, n_slices)
            page_trials.append({"id": trial_id, "age": round(trial.age, 1), "real": ids[0],
                                "candidates": ids[1:], "views": views})
            common = {"study_id": study_id, "trial_id": trial_id, "subject": trial.subject,
                      "session": trial.session or "n/a", "age": round(trial.age, 2)}
            key_rows.append({**common, "role": "real", "position": "n/a", "image_id": ids[0],
                             "configuration": "real", "file": os.path.relpath(trial.followup, output_dir)})
            for pos, (cand, image_id) in enumerate(zip(trial.candidates, ids[1:])):
                key_rows.append({**common, "role": "candidate", "position": pos, "image_id": image_id,
                                 "configuration": cand.configuration,
                                 "file": os.path.relpath(cand.image, output_dir)})
            LOG.info("trial %d of %d rendered (%d candidates)", number, len(trials), len(trial.candidates))
        page = {"study_id": study_id, "frame_px": FRAME_PX, "trials": page_trials}
        (tmp / "rater" / "index.html").write_text(page_html(page), encoding="utf-8")
        (tmp / "rater" / "README.txt").write_text(_RATER_README.format(study_id=study_id))
        pd.DataFrame(key_rows, columns=KEY_COLUMNS).to_csv(tmp / "key.tsv", sep="\t", index=False)
        info = {"StudyID": study_id, "Created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "GeneratedBy": {"Name": "daninet_pipeline", "Version": __version__},
                "OutputDir": str(output_dir), "Configurations": configurations,
                "Trials": len(trials), "Subjects": len({t.subject for t in trials}),
                "Seed": seed, "SlicesPerView": n_slices}
        (tmp / "study.json").write_text(json.dumps(info, indent=2) + "\n")
        if study_dir.exists():
            study_dir.rmdir()
        os.replace(tmp, study_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info
