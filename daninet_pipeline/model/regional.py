"""Regional SVRs for L_reg: one scikit-learn ``SVR`` per atlas region predicting the
ratio of regional intensity between two age groups of a subject.

Regions come from a named atlas shipped with an installed package (Neuromorphometrics,
through :func:`daninet_pipeline.data.resources.load_atlas`), resampled with nearest
neighbour onto the volumes' template grid and cut into slices exactly as the images are.

The training table (:func:`regional_pairs_table`) has one row per (longitudinal pair of
volumes of one subject in two different age groups, region): features ``from_group``
(earlier), ``to_group`` (later) and ``diagnosis`` (index, of the earlier scan), target
``ratio`` = (regional intensity sum of the later scan + eps) / (that of the earlier
scan + eps).
"""

from __future__ import annotations

import io
import logging
import pickle
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DaniNetError, ModelFileError
from .config import TrainConfig
from .data import SliceStore, extract_slices

LOGGER = logging.getLogger(__name__)


def atlas_region_masks(shape, affine, cfg: TrainConfig) -> np.ndarray:
    """Binary masks ``(R, *shape)`` of ``cfg.regions`` on a grid (nearest neighbour)."""
    from nibabel.processing import resample_from_to

    from ..data.resources import load_atlas

    img, labels = load_atlas(cfg.atlas)
    names = dict(zip(labels["name"], labels["index"]))
    missing = [r for r in cfg.regions if r not in names]
    if missing:
        raise DaniNetError(f"region(s) {', '.join(missing)} not in the {cfg.atlas} atlas")
    if affine is None:
        raise DaniNetError("the volumes have no affine: cannot place the atlas regions on their grid")
    lab = np.asarray(resample_from_to(img, (tuple(shape), np.asarray(affine)), order=0).dataobj)
    return np.stack([lab == names[r] for r in cfg.regions]).astype(np.uint8)


def region_slice_masks(shape, affine, slice_indices, cfg: TrainConfig) -> np.ndarray:
    """Region masks cut like the images: ``(n_slices, R, S, S)`` uint8."""
    masks3d = atlas_region_masks(shape, affine, cfg)
    out = np.stack([extract_slices(m, cfg.image_size, axis=cfg.slice_axis, indices=slice_indices) > 0.5
                    for m in masks3d], axis=1)
    return out.astype(np.uint8)


def regional_pairs_table(store: SliceStore, slice_masks: np.ndarray, cfg: TrainConfig) -> pd.DataFrame:
    """Longitudinal pairs x regions with their measured intensity ratio (module doc).

    ``slice_masks``: :func:`region_slice_masks` for the store's slices.
    """
    vols = store.volumes()
    m = slice_masks.astype(np.float32)  # (n, R, S, S)
    sums = np.stack([np.einsum("nhw,nrhw->r", store.volume_slices(v), m) for v in vols["volume"]])
    vols = vols.assign(group=cfg.age_group(vols["age"].to_numpy()),
                       dx=[cfg.diagnosis_index(d) for d in vols["diagnosis"]])
    rows = []
    for subject, sub in vols.groupby("subject", sort=True):
        sub = sub.sort_values("age")
        recs = sub.to_dict("records")
        for i, early in enumerate(recs):
            for late in recs[i + 1:]:
                if late["group"] <= early["group"]:
                    continue
                ratio = (sums[late["volume"]] + cfg.reg_eps) / (sums[early["volume"]] + cfg.reg_eps)
                for r, name in enumerate(cfg.regions):
                    rows.append((subject, int(early["group"]), int(late["group"]), int(early["dx"]), name,
                                 float(ratio[r])))
    return pd.DataFrame(rows, columns=["subject", "from_group", "to_group", "diagnosis", "region", "ratio"])


@dataclass
class RegionalSVRs:
    """Fitted per-region SVRs with their cross-validated error."""

    regions: tuple[str, ...]
    models: list = field(repr=False)
    cv_mae: dict  # region -> mean absolute error of the cross-validated prediction
    n_pairs: int

    def predict(self, from_group, to_group, diagnosis) -> np.ndarray:
        """Predicted later/earlier ratio ``(n, R)`` for arrays of features."""
        X = np.column_stack([np.ravel(from_group), np.ravel(to_group), np.ravel(diagnosis)]).astype(float)
        return np.stack([m.predict(X) for m in self.models], axis=1)

    def ratio_table(self, n_groups: int, n_diagnoses: int) -> np.ndarray:
        """Lookup table ``(R, A, A, n_diagnoses)``: ``[i, p, a, d] = SVR_i(min(p, a),
        max(p, a), d)``, 1 where ``p == a`` (the ``svr_ratios`` of
        :func:`daninet_pipeline.model.losses.regional_loss`)."""
        p, a, d = np.meshgrid(np.arange(n_groups), np.arange(n_groups), np.arange(n_diagnoses), indexing="ij")
        pred = self.predict(np.minimum(p, a), np.maximum(p, a), d)  # (A*A*D, R)
        table = pred.T.reshape(len(self.regions), n_groups, n_groups, n_diagnoses)
        table[:, np.arange(n_groups), np.arange(n_groups), :] = 1.0
        return table.astype(np.float32)

    def summary(self) -> pd.DataFrame:
        return pd.DataFrame({"region": list(self.regions), "cv_mae": [self.cv_mae[r] for r in self.regions]})

    def to_state(self) -> dict:
        """A dict of plain values for the model file (the SVRs pickled to bytes)."""
        buf = io.BytesIO()
        pickle.dump(self.models, buf)
        return {"regions": list(self.regions), "models": buf.getvalue(), "cv_mae": dict(self.cv_mae),
                "n_pairs": int(self.n_pairs)}

    @classmethod
    def from_state(cls, state: dict) -> RegionalSVRs:
        try:
            models = pickle.loads(state["models"])
            return cls(tuple(state["regions"]), models, dict(state["cv_mae"]), int(state["n_pairs"]))
        except Exception as exc:  # noqa: BLE001 - any failure means an unusable file
            raise ModelFileError(f"the regional SVRs in the model file cannot be read ({exc})") from None


def fit_regional_svrs(table: pd.DataFrame, *, C: float = 1.0, epsilon: float = 0.005,
                      n_splits: int = 5) -> RegionalSVRs:
    """Fit one RBF ``SVR`` per region on longitudinal pairs and cross-validate it.

    ``table``: columns ``region``, ``from_group``, ``to_group``, ``diagnosis``,
    ``ratio`` and (for grouped cross-validation, so that one subject's pairs never sit
    on both sides) ``subject``; :func:`regional_pairs_table` makes it. The reported
    error per region is the mean absolute error of the out-of-fold predictions
    (``GroupKFold`` over subjects, at most ``n_splits`` folds; NaN with fewer than 2
    subjects).

    >>> rng = np.random.default_rng(0)
    >>> t = pd.DataFrame({"subject": np.repeat(np.arange(20), 2), "region": "hip",
    ...                   "from_group": 0, "to_group": np.tile([1, 2], 20), "diagnosis": 0})
    >>> t["ratio"] = 1 - 0.05 * t["to_group"] + rng.normal(0, 0.001, len(t))
    >>> svrs = fit_regional_svrs(t)
    >>> [round(float(v), 2) for v in svrs.predict([0, 0], [1, 2], [0, 0])[:, 0]]
    [0.95, 0.9]
    """
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.svm import SVR

    need = {"region", "from_group", "to_group", "diagnosis", "ratio"}
    if not need <= set(table.columns):
        raise ValueError(f"the SVR table needs columns {sorted(need)}")
    if table.empty:
        raise DaniNetError("no longitudinal pairs in two different age groups: cannot fit the regional SVRs "
                           "(L_reg needs subjects with scans in at least two age groups)")
    regions = tuple(dict.fromkeys(table["region"]))
    models, cv = [], {}
    for region in regions:
        sub = table[table["region"] == region]
        X = sub[["from_group", "to_group", "diagnosis"]].to_numpy(float)
        y = sub["ratio"].to_numpy(float)
        model = SVR(C=C, epsilon=epsilon, gamma="scale")
        groups = sub["subject"].to_numpy() if "subject" in sub else np.arange(len(sub))
        k = min(n_splits, len(np.unique(groups)))
        if k >= 2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pred = cross_val_predict(model, X, y, groups=groups, cv=GroupKFold(n_splits=k))
            cv[region] = float(np.mean(np.abs(pred - y)))
        else:
            cv[region] = float("nan")
        models.append(model.fit(X, y))
        LOGGER.info("SVR %s: %d pairs, cross-validated MAE %.4f", region, len(sub), cv[region])
    return RegionalSVRs(regions, models, cv, int(len(table) // max(len(regions), 1)))
