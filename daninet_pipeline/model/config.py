"""One frozen configuration for DaniNet training, saved inside every checkpoint.

A configuration is a readable JSON file (the presets live in
``daninet_pipeline/data/presets``); :meth:`TrainConfig.from_file` accepts a path or a
preset name, :meth:`TrainConfig.to_dict` gives back the JSON-able form.

Example:

>>> cfg = TrainConfig()
>>> cfg.n_bins, cfg.bin_edges[0], cfg.bin_edges[-1]
(10, 63.0, 88.0)
>>> cfg.fold_diagnosis("EMCI")
'MCI'
>>> TrainConfig.from_dict(cfg.to_dict()) == cfg
True
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ..diagnoses import DIAGNOSES, FOLDING
from ..errors import DaniNetError
from ..regions import DEFAULT_REGIONS, REGION_ATLAS

#: Preset names shipped with the package (``data/presets/<name>.json``).
PRESETS = ("base", "P", "C", "T", "full", "full-residual", "demo")

#: The simulation mode of the CLI, the Nipype interface and ``Simulator.simulate``: the
#: scan plus the change the model generates from its own age (``direct``: the
#: generator's own image, the paper's output).
DEFAULT_SIMULATION_MODE = "change"
SIMULATION_MODES = ("change", "direct")

#: Loss terms that carry a weight and a schedule, in the order of the TSV log.
LOSS_TERMS = ("def", "vox", "reg", "adv_z", "adv_b", "tv")



class ConfigError(DaniNetError, ValueError):
    """A configuration file or value is not valid; the message says which field."""


@dataclass(frozen=True)
class WeightSchedule:
    """A loss weight as a function of the optimisation step.

    ``kind``:
      * ``"constant"``: ``value`` at every step;
      * ``"linear"``: ``initial`` up to step ``start``, a linear ramp to ``value`` at
        step ``end``, then ``value``;
      * ``"step"``: ``initial`` before step ``start``, ``value`` from it on.

    >>> WeightSchedule(1.0, "linear", start=10, end=20, initial=0.0).at(15)
    0.5
    """

    value: float = 1.0
    kind: str = "constant"
    start: int = 0
    end: int = 0
    initial: float = 0.0

    def __post_init__(self):
        if self.kind not in ("constant", "linear", "step"):
            raise ConfigError(f"weight schedule kind {self.kind!r} is not constant, linear or step")
        if self.kind == "linear" and self.end <= self.start:
            raise ConfigError(f"linear weight schedule needs end > start (got {self.start}, {self.end})")

    def at(self, step: int) -> float:
        """Weight at optimisation step ``step`` (0-based)."""
        if self.kind == "constant":
            return float(self.value)
        if step < self.start:
            return float(self.initial)
        if self.kind == "step" or step >= self.end:
            return float(self.value)
        frac = (step - self.start) / (self.end - self.start)
        return float(self.initial + frac * (self.value - self.initial))


def _w(value, **kw):
    return field(default_factory=lambda: WeightSchedule(value, **kw))


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a DaniNet training run (and of the model it writes).

    Age bins and labels
    -------------------
    age_min, age_max, n_bins:
        ``n_bins`` (A) equal-width age groups between ``age_min`` and ``age_max`` years
        (the authors: 10 bins, 63..88). Ages outside are clipped into the end bins.
    bin_edges_override:
        explicit bin edges (length A+1, increasing); overrides the three fields above.
    diagnoses:
        diagnosis labels the model is conditioned on, in index order (default CN, MCI, AD).
    diagnosis_folding:
        pairs (source label, label) folding other labels into ``diagnoses``; the default
        folds ADNI's six (CN, SMC, EMCI, MCI, LMCI, AD) into three: SMC -> CN,
        EMCI/LMCI -> MCI.
    condition_diagnosis:
        condition G and D_b on the diagnosis (the paper's "C"); if False the diagnosis
        input is all zeros.

    Images and networks
    -------------------
    image_size:
        slices are resampled (square-padded) to ``image_size`` x ``image_size``
        (a power of two >= 16; the authors: 128).
    slice_axis:
        the axis of the template-grid volume that is cut (2 = axial for RAS grids).
    brain_fraction:
        slices of the template brain mask with less than this fraction of the largest
        slice's brain area are not used for training.
    intensity_max:
        intensities of the (normalised) volumes are clipped to ``[0, intensity_max]``
        and mapped to the network range ``[-1, 1]``. The participant level scales the
        99th percentile inside the brain to 1 and clips at 1.5, the default here, so
        the whole normalised range is kept (real follow-ups reach ~1.5).
    z_dim:
        length of the latent ``z`` (the authors: 200).
    width:
        channels of the first encoder layer; every network scales with it (the authors'
        CAAE-style nets correspond to 64).
    kernel_size:
        convolution kernel of E, G and D_b (stride 2 layers).
    slice_frequencies:
        number of sine/cosine pairs encoding the slice position for G and D_b.
    residual:
        G predicts the change from the input (``g = x + tanh(G)``) instead of the
        whole image (our addition).

    Losses
    ------
    weight_def, weight_vox, weight_reg, weight_adv_z, weight_adv_b, weight_tv:
        weight and schedule of each loss term (:class:`WeightSchedule`): L_def,
        L_vox (differentiable surrogate), L_reg, the two adversarial terms of E and G,
        and a total-variation smoothness term on the generated images.
    regions:
        Neuromorphometrics labels (by name) whose masks and regional model make L_reg.
    atlas:
        the atlas (``daninet_pipeline.data.resources.load_atlas``) the regions come from.
    reg_eps:
        the ``eps`` of L_reg (paper: 0.1).
    regional_model:
        the regional progression model that gives L_reg its targets
        (:mod:`daninet_pipeline.model.regional`): ``"rates"`` (a per-year rate per
        region, diagnosis and age bin; predictions compose across spans) or ``"svr"``
        (the paper's RBF SVRs on the age groups; far pairs revert to the mean).
    regional_smoothness:
        penalty of the ``rates`` model on a rate's change between neighbouring age bins
        and on each diagnosis' departure from the pooled rate (relative to the data).
    svr_C, svr_epsilon:
        hyper-parameters of the ``svr`` regional model (scikit-learn ``SVR``, RBF).

    Optimisation
    ------------
    lr, beta1, beta2:
        Adam learning rate and betas for every network (the authors: 3e-4, 0.5).
    batch_size:
        slices per optimisation step and process (the authors: 100).
    steps:
        optimisation steps of a training run.
    transfer_steps, transfer_lr:
        fine-tuning steps and learning rate for the transfer step ("T"); 0 disables it.
    seed:
        seed of weights, batch sampling and prior noise (a resumed run repeats an
        uninterrupted one).
    precision:
        ``"fp32"`` or ``"bf16"`` (bf16 autocast of the forward passes).
    checkpoint_every, log_every:
        steps between checkpoints and between TSV log rows (1 = every step).
    model_every:
        steps between model files kept beside the final one (``model_step-<step>.pt``),
        to choose the step on the validation split; 0 (default): the final one only
        (a paper-sized model file is hundreds of MB).
    """

    # age bins and labels
    age_min: float = 63.0
    age_max: float = 88.0
    n_bins: int = 10
    bin_edges_override: tuple[float, ...] | None = None
    diagnoses: tuple[str, ...] = DIAGNOSES
    diagnosis_folding: tuple[tuple[str, str], ...] = FOLDING
    condition_diagnosis: bool = True
    # images and networks
    image_size: int = 128
    slice_axis: int = 2
    brain_fraction: float = 0.1
    intensity_max: float = 1.5
    z_dim: int = 200
    width: int = 64
    kernel_size: int = 4
    slice_frequencies: int = 4
    residual: bool = False
    # losses
    weight_def: WeightSchedule = _w(1.0)
    weight_vox: WeightSchedule = _w(0.0)
    weight_reg: WeightSchedule = _w(0.0)
    weight_adv_z: WeightSchedule = _w(1e-3)
    weight_adv_b: WeightSchedule = _w(1e-3)
    weight_tv: WeightSchedule = _w(0.0)
    regions: tuple[str, ...] = DEFAULT_REGIONS
    atlas: str = REGION_ATLAS
    reg_eps: float = 0.1
    regional_model: str = "rates"
    regional_smoothness: float = 1.0
    svr_C: float = 1.0
    svr_epsilon: float = 0.005
    # optimisation
    lr: float = 3e-4
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 32
    steps: int = 20000
    transfer_steps: int = 0
    transfer_lr: float = 1e-4
    seed: int = 0
    precision: str = "fp32"
    checkpoint_every: int = 500
    log_every: int = 1
    model_every: int = 0

    def __post_init__(self):
        edges = np.asarray(self.bin_edges)
        if len(edges) < 3 or np.any(np.diff(edges) <= 0):
            raise ConfigError(f"bin edges must be increasing with at least 2 bins (got {edges.tolist()})")
        if self.image_size < 16 or self.image_size & (self.image_size - 1):
            raise ConfigError(f"image_size must be a power of two >= 16 (got {self.image_size})")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be fp32 or bf16 (got {self.precision!r})")
        if not self.diagnoses or len(set(self.diagnoses)) != len(self.diagnoses):
            raise ConfigError(f"diagnoses must be distinct labels (got {self.diagnoses})")
        for src, dst in self.diagnosis_folding:
            if dst not in self.diagnoses:
                raise ConfigError(f"diagnosis_folding maps {src!r} to {dst!r}, which is not in diagnoses")
        for name in ("z_dim", "width", "batch_size", "kernel_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive")
        if self.regional_model not in ("rates", "svr"):
            raise ConfigError(f"regional_model must be rates or svr (got {self.regional_model!r})")
        if self.intensity_max <= 0 or self.regional_smoothness < 0:
            raise ConfigError("intensity_max must be positive and regional_smoothness >= 0")
        if self.steps < 0 or self.transfer_steps < 0:
            raise ConfigError("steps and transfer_steps must be >= 0")

    # ---- derived values -------------------------------------------------------------
    @property
    def bin_edges(self) -> tuple[float, ...]:
        """Edges of the A age groups (A + 1 increasing values, years)."""
        if self.bin_edges_override is not None:
            return tuple(float(e) for e in self.bin_edges_override)
        return tuple(float(e) for e in np.linspace(self.age_min, self.age_max, self.n_bins + 1))

    @property
    def n_groups(self) -> int:
        """A, the number of age groups."""
        return len(self.bin_edges) - 1

    @property
    def bin_centres(self) -> np.ndarray:
        e = np.asarray(self.bin_edges)
        return (e[:-1] + e[1:]) / 2

    def weight(self, term: str) -> WeightSchedule:
        """The schedule of loss term ``term`` (one of :data:`LOSS_TERMS`)."""
        if term not in LOSS_TERMS:
            raise ConfigError(f"unknown loss term {term!r}")
        return getattr(self, f"weight_{term}")

    def age_group(self, age) -> np.ndarray:
        """0-based age group of each age (clipped into the end groups).

        >>> TrainConfig().age_group([60, 63, 65.4, 88, 99]).tolist()
        [0, 0, 0, 9, 9]
        """
        edges = np.asarray(self.bin_edges)
        g = np.searchsorted(edges, np.asarray(age, dtype=float), side="right") - 1
        return np.clip(g, 0, self.n_groups - 1)

    def age_interpolation(self, age):
        """The two nearest age-group centres of each age and the weight of the lower.

        Returns ``(lo, hi, alpha)`` with ``age = alpha * c_lo + (1 - alpha) * c_hi``
        (``alpha = 1`` and ``lo == hi`` outside the range of centres): the mix used by
        L_def and by the simulator for ages between centres.

        >>> lo, hi, al = TrainConfig().age_interpolation([64.0, 65.0, 90.0])
        >>> lo.tolist(), hi.tolist(), [round(float(v), 2) for v in al]
        ([0, 0, 9], [0, 1, 9], [1.0, 0.7, 1.0])
        """
        c = self.bin_centres
        t = np.clip(np.asarray(age, dtype=float), c[0], c[-1])
        lo = np.clip(np.searchsorted(c, t, side="right") - 1, 0, len(c) - 1)
        hi = np.minimum(lo + 1, len(c) - 1)
        span = c[hi] - c[lo]
        alpha = np.where(span > 0, (c[hi] - t) / np.where(span > 0, span, 1.0), 1.0)
        hi = np.where((span > 0) & (alpha < 1), hi, lo)
        alpha = np.where(hi == lo, 1.0, alpha)
        return lo.astype(np.int64), hi.astype(np.int64), alpha.astype(np.float32)

    def fold_diagnosis(self, label: str) -> str:
        """A dataset's diagnosis label folded into :attr:`diagnoses`.

        Raises :class:`ConfigError` for a label that is neither a diagnosis nor folded.
        """
        label = str(label).strip()
        if label in self.diagnoses:
            return label
        folding = dict(self.diagnosis_folding)
        if label in folding:
            return folding[label]
        raise ConfigError(
            f"diagnosis {label!r} is not one of {', '.join(self.diagnoses)} and has no folding rule"
        )

    def diagnosis_index(self, label) -> int:
        """0-based index of a (foldable) diagnosis label."""
        return self.diagnoses.index(self.fold_diagnosis(label))

    # ---- (de)serialisation ----------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-able dict (tuples as lists, schedules as dicts)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, WeightSchedule):
                v = dataclasses.asdict(v)
            elif isinstance(v, tuple):
                v = [list(x) if isinstance(x, tuple) else x for x in v]
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Build from :meth:`to_dict` output; unknown keys are an error, missing keys
        take their defaults. A ``"description"`` key is ignored (for preset files)."""
        data = {k: v for k, v in dict(data).items() if k != "description"}
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(f"unknown configuration field(s): {', '.join(unknown)}")
        kwargs = {}
        for k, v in data.items():
            if k.startswith("weight_"):
                if isinstance(v, (int, float)):
                    v = WeightSchedule(float(v))
                elif isinstance(v, dict):
                    try:
                        v = WeightSchedule(**v)
                    except TypeError as exc:
                        raise ConfigError(f"{k}: {exc}") from None
                else:
                    raise ConfigError(f"{k} must be a number or a schedule object")
            elif k == "diagnosis_folding":
                v = tuple((str(a), str(b)) for a, b in (v.items() if isinstance(v, dict) else v))
            elif isinstance(v, list):
                v = tuple(v)
            kwargs[k] = v
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None

    @classmethod
    def from_file(cls, path_or_preset: str | Path) -> TrainConfig:
        """Read a JSON configuration file, or a preset by name (see :data:`PRESETS`).

        A preset file may name another preset under ``"extends"``; its own keys then
        override that preset's.

        >>> TrainConfig.from_file("full").weight_vox.value > 0
        True
        """
        return cls.from_dict(_read_config(path_or_preset, seen=()))

    def replace(self, **changes) -> TrainConfig:
        """A copy with some fields changed (frozen dataclass)."""
        return dataclasses.replace(self, **changes)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def preset_path(name: str) -> Path:
    """Path of a shipped preset file."""
    return Path(str(resources.files("daninet_pipeline") / "data" / "presets" / f"{name}.json"))


def _read_config(path_or_preset, seen) -> dict:
    p = Path(path_or_preset)
    if not p.suffix and str(path_or_preset) in PRESETS:
        p = preset_path(str(path_or_preset))
    if not p.is_file():
        raise ConfigError(
            f"configuration {str(path_or_preset)!r} is neither a file nor a preset ({', '.join(PRESETS)})"
        )
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a configuration must be a JSON object")
    parent = data.pop("extends", None)
    if parent is not None:
        if parent in seen:
            raise ConfigError(f"{p}: circular 'extends' of {parent!r}")
        base = _read_config(parent, seen + (parent,))
        base.update(data)
        data = base
    return data
