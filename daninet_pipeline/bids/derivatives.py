"""Keeping the derivatives folder valid for the BIDS validator; reading what made a derivative."""

from __future__ import annotations

import json
import re
from pathlib import Path

#: Files the derivatives folder holds that BIDS 1.10 has no rule for: transforms (BEP014),
#: QC figures, the group level's models and reports, Nipype crash logs.
#: (bids-validator-deno's syntax: ``**/figures`` and ``models`` match folders, a trailing
#: slash does not.)
BIDSIGNORE = ("*_xfm.txt", "*_xfm.json", "*_desc-qc_T1w.tsv", "**/figures", "models", "logs", "*.html")


def ensure_bidsignore(output_dir, patterns=BIDSIGNORE) -> Path:
    """Add the missing ``patterns`` to ``output_dir/.bidsignore`` (kept lines stay)."""
    path = Path(output_dir) / ".bidsignore"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = path.read_text().splitlines() if path.is_file() else []
    missing = [p for p in patterns if p not in lines]
    if missing:
        path.write_text("\n".join(lines + missing) + "\n")
    return path


def preproc_provenance(preproc) -> dict:
    """What made a pre-processed T1w (from its name and JSON sidecar): ``template`` (the
    ``space-`` entity), ``intensity_normalization``, ``preprocessing_backend`` and
    ``preprocessing_version`` (None where the sidecar lacks them). A model records its
    training data's and refuses other data (``Simulator.check_data``)."""
    path = Path(preproc)
    space = re.search(r"_space-([A-Za-z0-9]+)_", path.name)
    side = path.with_name(re.sub(r"\.nii(\.gz)?$", ".json", path.name))
    meta = {}
    if side.is_file():
        try:
            meta = json.loads(side.read_text())
        except (OSError, ValueError):
            meta = {}
    return {"template": space.group(1) if space else None,
            "intensity_normalization": meta.get("IntensityNormalization"),
            "preprocessing_backend": meta.get("PreprocessingBackend"),
            "preprocessing_version": meta.get("PreprocessingVersion")}


def common_provenance(paths) -> dict:
    """The provenance (:func:`preproc_provenance`) shared by pre-processed T1w ``paths``;
    :class:`~daninet_pipeline.errors.BIDSInputError` naming two that differ."""
    from ..errors import BIDSInputError

    first, out = None, None
    for path in paths:
        prov = preproc_provenance(path)
        if out is None:
            first, out = path, prov
        elif prov != out:
            diff = sorted(k for k in prov if prov[k] != out[k])
            raise BIDSInputError(f"{Path(path).name} and {Path(first).name} were pre-processed differently "
                                 f"({', '.join(diff)}): re-run the participant level on both")
    return out or {}


def simulated_sidecar(result: dict, model_file, source_t1w: str, bids_dir, source_derivative: str, *,
                      model: str, transfer: bool, template: str | None = None) -> dict:
    """JSON sidecar of a simulated image: source, ages, diagnosis, model identity, synthetic.

    ``Sources`` holds BIDS URIs of the raw T1w (``bids:raw:``, the input dataset) and of
    the pre-processed baseline it was simulated from (``source_derivative``, relative to
    OUTPUT_DIR: ``bids::``). ``Model`` names the model (``Name``, its BIDS ``Label`` as in
    the ``desc`` entity), its file and the file's SHA-256. ``ModelAge``/``ModelSourceAge``
    are the ages the model used (an age outside its age groups is simulated at the
    nearest one) and ``ModelAgeGroups`` the groups mixed for the simulated age.
    """
    import os

    from .. import __version__
    from ..data.resources import DEFAULT_TEMPLATE
    from .naming import model_label

    raw = os.path.relpath(source_t1w, bids_dir).replace(os.sep, "/")
    return {
        "Description": "SYNTHETIC image simulated by DaniNet: not an acquired scan",
        "Synthetic": True,
        "SkullStripped": True,
        "Sources": [f"bids:raw:{raw}", f"bids::{source_derivative}"],
        "SpatialReference": template or DEFAULT_TEMPLATE,
        "SourceAge": round(result["source_age"], 2),
        "SimulatedAge": round(result["age"], 2),
        "SimulatedDiagnosis": result["diagnosis"],
        "CounterfactualDiagnosis": bool(result["counterfactual"]),
        "TransferLearning": bool(transfer),
        "SimulationMode": result["mode"],
        "ModelAge": round(result["model_age"], 2),
        "ModelSourceAge": round(result["model_source_age"], 2),
        "ModelAgeGroups": {"Groups": result["age_groups"], "Weights": [round(w, 4) for w in result["age_weights"]]},
        "Model": {"Name": model, "Label": model_label(model), "File": Path(model_file).name,
                  "SHA256": sha256_of(model_file)},
        "GeneratedBy": {"Name": "daninet_pipeline", "Version": __version__},
    }


def sha256_of(path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
