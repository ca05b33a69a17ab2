"""Finding the trials of a rating study in a derivatives folder.

A trial is one real follow-up session of a subject, pre-processed by the participant
level, with at least two candidate images at that session's age: the images simulated
from the subject's baseline by trained models (found by their JSON sidecars:
``"Synthetic": true``, ``"Model": {"Name": ...}``, ``"SimulatedAge"``, ``"Sources"``),
and the ``identity`` answer (the pre-processed baseline itself, named in the sidecars'
``Sources``). A simulated image matches a follow-up when its ``SimulatedAge`` is within
:data:`AGE_TOLERANCE` years of the session's age. Counterfactual-diagnosis images and
images in native space are not candidates. A configuration called ``population-mean``
(or any other name) is picked up the same way once a derivative with such a sidecar
exists; nothing is made up here.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

from ..data.resources import DEFAULT_TEMPLATE
from ..errors import RatingError

LOG = logging.getLogger("daninet.rating")

#: Largest difference (years) between a simulated age and a follow-up's age that matches.
AGE_TOLERANCE = 0.05
#: The configuration name of the baseline shown as an answer.
IDENTITY = "identity"


@dataclass(frozen=True)
class Candidate:
    """One answer of a trial: a configuration's image (``sidecar`` None for identity)."""

    configuration: str
    image: Path
    sidecar: Path | None = None


@dataclass
class Trial:
    """One real follow-up and its candidates (ages in years)."""

    subject: str
    session: str | None
    age: float
    followup: Path
    mask: Path | None
    baseline: Path
    candidates: list[Candidate] = field(default_factory=list)


@dataclass(frozen=True)
class Simulated:
    """What a simulated image's sidecar says."""

    model: str
    age: float
    image: Path
    sidecar: Path
    baseline: Path
    subject: str


def raw_dataset_of(output_dir: Path) -> Path:
    """The raw BIDS dataset a derivatives folder was made from (``DatasetLinks.raw`` of its
    ``dataset_description.json``)."""
    desc = Path(output_dir) / "dataset_description.json"
    try:
        links = json.loads(desc.read_text()).get("DatasetLinks", {})
    except FileNotFoundError:
        raise RatingError(f"{desc}: missing; OUTPUT_DIR is not a daninet derivatives folder") from None
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
        raise RatingError(f"{desc}: not a JSON object ({err})") from None
    raw = links.get("raw") if isinstance(links, dict) else None
    if not isinstance(raw, str) or not raw:
        raise RatingError(f"{desc}: no DatasetLinks.raw; give the raw dataset with --bids-dir")
    parsed = urlparse(raw)
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(raw)
    if not path.is_absolute():
        path = (Path(output_dir) / path).resolve()
    if not path.is_dir():
        raise RatingError(f"{desc}: the raw dataset {path} is not there; give it with --bids-dir")
    return path


def _image_of(sidecar: Path) -> Path:
    for ext in (".nii.gz", ".nii"):
        image = sidecar.with_name(sidecar.name[: -len(".json")] + ext)
        if image.is_file():
            return image
    raise RatingError(f"{sidecar}: no image beside this sidecar")


def read_simulated(output_dir: Path, template: str = DEFAULT_TEMPLATE) -> list[Simulated]:
    """Every simulated template-space image under ``output_dir``, from its sidecar."""
    output_dir = Path(output_dir)
    found = []
    for sidecar in sorted(output_dir.glob("sub-*/**/anat/*_T1w.json")):
        try:
            meta = json.loads(sidecar.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RatingError(f"{sidecar}: not valid JSON ({err})") from None
        if not isinstance(meta, dict) or meta.get("Synthetic") is not True:
            continue
        if meta.get("SpatialReference") != template or meta.get("CounterfactualDiagnosis"):
            continue
        model = meta.get("Model")
        name = model.get("Name") if isinstance(model, dict) else None
        if not isinstance(name, str) or not name:
            raise RatingError(f"{sidecar}: no Model.Name in the sidecar (written before models "
                              "were named: simulate again with this version)")
        age = meta.get("SimulatedAge")
        if isinstance(age, bool) or not isinstance(age, (int, float)):
            raise RatingError(f"{sidecar}: SimulatedAge missing or not a number")
        sources = meta.get("Sources")
        derived = [s for s in sources if isinstance(s, str) and s.startswith("bids::")] \
            if isinstance(sources, list) else []
        if not derived:
            raise RatingError(f"{sidecar}: no 'bids::' entry (the pre-processed baseline) in Sources")
        baseline = (output_dir / derived[0][len("bids::"):]).resolve()
        if not baseline.is_file():
            raise RatingError(f"{sidecar}: its baseline {baseline} is missing")
        rel = baseline.relative_to(output_dir.resolve()) if baseline.is_relative_to(output_dir.resolve()) else None
        match = re.fullmatch(r"sub-([A-Za-z0-9]+)", rel.parts[0]) if rel is not None else None
        if match is None:
            raise RatingError(f"{sidecar}: its baseline {derived[0]} is not a subject's file of this folder")
        found.append(Simulated(model=name, age=float(age), image=_image_of(sidecar), sidecar=sidecar,
                               baseline=baseline, subject=match.group(1)))
    return found


def find_trials(output_dir, *, bids_dir=None, models=None, subjects=None) -> list[Trial]:
    """All trials of ``output_dir`` (see the module's docstring), sorted by subject and age.

    ``models``: configuration names to offer (``identity`` included only when named);
    default every model found plus ``identity``. ``subjects``: labels, with or without
    ``sub-``.
    """
    from ..training.sessions import gather_sessions

    output_dir = Path(output_dir).resolve()
    if not output_dir.is_dir():
        raise RatingError(f"{output_dir}: not a directory")
    bids_dir = Path(bids_dir) if bids_dir is not None else raw_dataset_of(output_dir)
    simulated = read_simulated(output_dir)
    if not simulated:
        raise RatingError(f"{output_dir}: no simulated images (sidecars with \"Synthetic\": true): "
                          "run the participant level with --model first")
    known = sorted({s.model for s in simulated})
    if models:
        unknown = [m for m in models if m != IDENTITY and m not in known]
        if unknown:
            raise RatingError(f"{output_dir}: no simulated images of {', '.join(unknown)} "
                              f"(found: {', '.join(known)})")
        chosen = list(dict.fromkeys(models))
    else:
        chosen = known + [IDENTITY]
    wanted = {s[4:] if s.startswith("sub-") else s for s in subjects} if subjects else None
    simulated = [s for s in simulated if s.model in chosen and (wanted is None or s.subject in wanted)]
    if wanted is not None:
        lacking = sorted(wanted - {s.subject for s in simulated})
        if lacking:
            raise RatingError(f"{output_dir}: no simulated images of the chosen models for "
                              f"sub-{', sub-'.join(lacking)}")
    labels = sorted({s.subject for s in simulated})
    sessions, _ = gather_sessions(bids_dir, output_dir, participant_label=labels or None)

    trials = []
    for row in sessions.itertuples(index=False):
        if not row.preproc:
            continue
        followup = Path(row.preproc).resolve()
        here = [s for s in simulated if s.subject == row.subject and abs(s.age - row.age) <= AGE_TOLERANCE
                and s.baseline != followup]
        if not here:
            continue
        baselines = sorted({str(s.baseline) for s in here})
        if len(baselines) > 1:
            LOG.warning("sub-%s ses-%s: candidates come from different baselines (%s): left out",
                        row.subject, row.session, ", ".join(baselines))
            continue
        candidates = []
        for model in chosen:
            if model == IDENTITY:
                candidates.append(Candidate(IDENTITY, here[0].baseline))
                continue
            hits = [s for s in here if s.model == model]
            if len(hits) > 1:
                raise RatingError(f"{hits[0].sidecar} and {hits[1].sidecar}: two images of model "
                                  f"{model} at age {row.age:g}")
            if hits:
                candidates.append(Candidate(model, hits[0].image, hits[0].sidecar))
        if len(candidates) >= 2:
            mask = Path(row.mask) if row.mask else None
            trials.append(Trial(row.subject, row.session, float(row.age), followup, mask,
                                here[0].baseline, candidates))
    if not trials:
        raise RatingError(f"{output_dir}: no follow-up session has two or more candidates at its age "
                          f"(configurations: {', '.join(chosen)})")
    return sorted(trials, key=lambda t: (t.subject, t.age))


def sample_trials(trials: list[Trial], n: int | None, rng: np.random.Generator, *,
                  one_per_subject: bool = False) -> list[Trial]:
    """``n`` trials drawn without replacement (all when ``n`` is None or larger), in the
    input's order; with ``one_per_subject`` first one follow-up drawn per subject."""
    if one_per_subject:
        by_subject: dict[str, list[Trial]] = {}
        for trial in trials:
            by_subject.setdefault(trial.subject, []).append(trial)
        trials = [group[int(rng.integers(len(group)))] for group in by_subject.values()]
    if n is None or n >= len(trials):
        if n is not None and n > len(trials):
            LOG.warning("%d trials asked for, %d available: all are used", n, len(trials))
        return list(trials)
    if n < 1:
        raise RatingError("--trials must be at least 1")
    keep = sorted(rng.choice(len(trials), size=n, replace=False))
    return [trials[i] for i in keep]
