"""The model file: one self-describing file per trained model, meant to travel between
labs, so nothing in it is ever unpickled.

Layout (a dict saved with ``torch.save`` and read with ``torch.load(weights_only=True)``,
which admits only tensors and plain containers):

``format``, ``format_version``, ``package_version``, ``created``
    what wrote it; another format version is refused in one line.
``config``
    the :class:`~daninet_pipeline.model.config.TrainConfig` as a dict.
``bin_edges``, ``diagnoses``
    the age groups (years) and diagnosis labels, for readers without the config class.
``nets``
    the state dicts of E, G, D_z and D_b.
``regional``, ``ratio_table``
    the regional progression model as plain arrays and numbers
    (:meth:`~daninet_pipeline.model.regional.RegionalModel.to_state`) and its ratio
    table ``(R, A, A, n_diagnoses)``; None without L_reg.
``grid``
    the template grid, slices and intensity scale of the training data, and its
    provenance (template, normalisation, pre-processing version).
``training``
    a summary of the training data and run (the model card's source).
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import torch

from .. import __version__
from ..errors import ModelFileError

MODEL_FORMAT = "daninet-model"
#: 2: the regional model as arrays (format 1 pickled scikit-learn SVRs: refused).
MODEL_FORMAT_VERSION = 2
MODEL_NAME = "model.pt"
CHECKPOINT_NAME = "checkpoint.pt"


def atomic_save(obj, path) -> Path:
    """``torch.save`` to a temporary name, then rename: never a half-written file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def model_state(cfg, nets: dict, *, regional=None, ratio_table=None, grid=None, summary=None) -> dict:
    """The dict a model file holds (module docstring); tensors are moved to the CPU."""
    return {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "package_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": cfg.to_dict(),
        "bin_edges": list(cfg.bin_edges),
        "diagnoses": list(cfg.diagnoses),
        "nets": {k: {n: t.detach().cpu() for n, t in v.state_dict().items()} for k, v in nets.items()},
        "regional": None if regional is None else regional.to_state(),
        "ratio_table": None if ratio_table is None else torch.as_tensor(ratio_table).detach().cpu().float(),
        "grid": grid or {},
        "training": summary or {},
    }


def load_model_file(path) -> dict:
    """Read and validate a model file; :class:`ModelFileError` (one line naming the file)
    if it is missing, corrupt, not a DaniNet model, of another format version, or holds
    a configuration or regional model this version cannot read."""
    from .config import TrainConfig
    from .regional import RegionalModel

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any read failure is a corrupt file
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path}: not a readable DaniNet model file ({reason})") from None
    if not isinstance(state, dict) or state.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path}: not a DaniNet model file")
    if state.get("format_version") != MODEL_FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model file format {state.get('format_version')} (written by daninet_pipeline "
            f"{state.get('package_version')}) is not supported by daninet_pipeline {__version__} "
            f"(format {MODEL_FORMAT_VERSION}): retrain the model with this version"
        )
    for key in ("config", "nets"):
        if key not in state:
            raise ModelFileError(f"{path}: model file has no {key!r}")
    try:
        cfg = TrainConfig.from_dict(state["config"])
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: configuration is not valid for this version ({exc})") from None
    try:
        if state.get("regional") is not None:
            state["regional"] = RegionalModel.from_state(state["regional"])
        table = state.get("ratio_table")
        if table is not None:
            want = (len(cfg.regions), cfg.n_groups, cfg.n_groups, len(cfg.diagnoses))
            if not torch.is_tensor(table) or tuple(table.shape) != want:
                raise ModelFileError(f"the ratio table is not a tensor of shape {want}")
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    return state
