"""The regional progression model behind L_reg: for each atlas region, the ratio of
regional intensity between two age groups of a subject with a given diagnosis.

Regions come from a named atlas shipped with an installed package (Neuromorphometrics,
through :func:`daninet_pipeline.data.resources.load_atlas`), resampled with nearest
neighbour onto the volumes' template grid and cut into slices exactly as the images are.

Targets are measured as L_reg measures its prediction: per slice. For a longitudinal
pair of one subject's volumes, :func:`regional_change` takes, for each region, the
log-ratio ``log((sum(late r) + eps) / (sum(early r) + eps))`` of every slice holding the
region and averages them weighted by the region's area in the slice
(:func:`regional_pairs_table` has one row per pair and region).

Two models (``TrainConfig.regional_model``):

``rates`` (default)
    ``log T_i(a -> c, d) = sum_k years_k(a, c) * rate[i, d, k]``: a per-year rate per
    region, diagnosis and age bin, summed over the years the span spends in each bin.
    Predictions compose across spans by construction (``T(a -> c) = T(a -> b) T(b ->
    c)``), so far pairs, which longitudinal data rarely holds, get targets consistent
    with near ones. Fitted with scikit-learn (weighted least squares) with penalties
    on the rate's change between neighbouring bins (bins no pair crosses take their
    neighbours' rate) and on each diagnosis' departure from the pooled rate.
``svr``
    the paper's choice: one RBF ``SVR`` per region on (age group from, age group to,
    diagnosis) -> ratio. It does not compose: far pairs revert towards the mean.

Both are stored in the model file as plain arrays and numbers, never pickled.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..errors import DaniNetError, ModelFileError
from .config import TrainConfig
from .data import SliceStore, extract_slices

LOGGER = logging.getLogger(__name__)

PAIR_COLUMNS = ["subject", "from_group", "to_group", "from_age", "to_age", "diagnosis", "region", "log_ratio",
                "ratio", "weight"]


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


def regional_change(early, late, masks, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-region change between two slice stacks, measured as L_reg measures it.

    ``early``, ``late``: ``(n, S, S)`` slices of one subject's two volumes (store scale);
    ``masks``: ``(n, R, S, S)``. Returns ``(log_ratio, weight)``, each ``(R,)``: the
    area-weighted mean over slices of ``log((sum(late r) + eps) / (sum(early r) + eps))``
    and the region's total area (pixels; 0 and NaN for a region in no slice).
    """
    m = np.asarray(masks, dtype=np.float64)
    area = m.sum(axis=(2, 3))  # (n, R)
    s_e = np.einsum("nhw,nrhw->nr", np.asarray(early, np.float64), m) + eps
    s_l = np.einsum("nhw,nrhw->nr", np.asarray(late, np.float64), m) + eps
    lr = np.log(s_l / s_e)
    total = area.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(total > 0, (area * lr).sum(0) / total, np.nan)
    return mean, total


def regional_pairs_table(store: SliceStore, slice_masks: np.ndarray, cfg: TrainConfig) -> pd.DataFrame:
    """Longitudinal pairs x regions with their measured change (module doc).

    One row per (pair of a subject's volumes with the later one older, region):
    columns :data:`PAIR_COLUMNS`; ``diagnosis`` is the earlier scan's (index),
    ``weight`` 1 per pair. ``slice_masks``: :func:`region_slice_masks` for the store's
    slices.
    """
    vols = store.volumes()
    vols = vols.assign(group=cfg.age_group(vols["age"].to_numpy()),
                       dx=[cfg.diagnosis_index(d) for d in vols["diagnosis"]])
    rows = []
    for subject, sub in vols.groupby("subject", sort=True):
        recs = sub.sort_values("age").to_dict("records")
        slices = {r["volume"]: store.volume_slices(r["volume"]) for r in recs}
        for i, early in enumerate(recs):
            for late in recs[i + 1:]:
                if late["age"] <= early["age"]:
                    continue
                lr, area = regional_change(slices[early["volume"]], slices[late["volume"]], slice_masks,
                                           cfg.reg_eps)
                for r, name in enumerate(cfg.regions):
                    if area[r] > 0:
                        rows.append((subject, int(early["group"]), int(late["group"]), float(early["age"]),
                                     float(late["age"]), int(early["dx"]), name, float(lr[r]),
                                     float(np.exp(lr[r])), 1.0))
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def years_in_bins(from_age, to_age, edges) -> np.ndarray:
    """Years the span ``[from_age, to_age]`` spends in each age bin ``(n, A)``; the end
    bins reach to -inf and +inf, so ages outside the bins count in them.

    >>> years_in_bins([64.0], [69.0], [63.0, 65.0, 70.0, 75.0]).tolist()
    [[1.0, 4.0, 0.0]]
    """
    lo = np.minimum(np.ravel(from_age), np.ravel(to_age)).astype(float)[:, None]
    hi = np.maximum(np.ravel(from_age), np.ravel(to_age)).astype(float)[:, None]
    e = np.asarray(edges, dtype=float).copy()
    e[0], e[-1] = -np.inf, np.inf
    return np.clip(np.minimum(hi, e[None, 1:]) - np.maximum(lo, e[None, :-1]), 0, None)


# --------------------------------------------------------------------------------------
# the models
# --------------------------------------------------------------------------------------
@dataclass
class RegionalModel:
    """A fitted regional model: ``kind`` (``rates`` or ``svr``), its arrays, and the
    cross-validated error of each region (mean absolute error of the ratio)."""

    kind: str
    regions: tuple[str, ...]
    arrays: dict = field(repr=False)
    cv_error: dict
    n_pairs: int

    # ---- prediction -----------------------------------------------------------------
    def predict_log_ratio(self, from_age, to_age, diagnosis, cfg: TrainConfig) -> np.ndarray:
        """``log T`` ``(n, R)`` for arrays of spans (years) and diagnosis indices."""
        d = np.ravel(diagnosis).astype(int)
        if self.kind == "rates":
            t = years_in_bins(from_age, to_age, self.arrays["edges"])  # (n, A)
            rates = self.arrays["rates"]  # (R, D, A)
            return np.einsum("na,nra->nr", t, rates[:, d, :].transpose(1, 0, 2))
        g0, g1 = cfg.age_group(from_age), cfg.age_group(to_age)
        return np.log(np.clip(self._svr_ratio(np.minimum(g0, g1), np.maximum(g0, g1), d), 1e-6, None))

    def _svr_ratio(self, g_from, g_to, d) -> np.ndarray:
        X = np.column_stack([np.ravel(g_from), np.ravel(g_to), np.ravel(d)]).astype(float)
        out = []
        for r in range(len(self.regions)):
            sv = self.arrays["support_vectors"][r]
            k = np.exp(-self.arrays["gamma"][r] * ((X[:, None, :] - sv[None]) ** 2).sum(-1))
            out.append(k @ self.arrays["dual_coef"][r] + self.arrays["intercept"][r])
        return np.stack(out, axis=1)

    def ratio_table(self, n_groups: int, n_diagnoses: int) -> np.ndarray:
        """Lookup table ``(R, A, A, n_diagnoses)``: ``[i, p, a, d]`` = the ratio from
        group ``min(p, a)`` to ``max(p, a)`` (between their centres), 1 where
        ``p == a``: the ``target_ratios`` of :func:`~daninet_pipeline.model.losses.regional_loss`."""
        if self.kind == "rates":
            edges = np.asarray(self.arrays["edges"], dtype=float)
            if len(edges) != n_groups + 1:
                raise DaniNetError(f"the regional model has {len(edges) - 1} age groups, not {n_groups}")
            centres = (edges[:-1] + edges[1:]) / 2
            p, a, d = np.meshgrid(np.arange(n_groups), np.arange(n_groups), np.arange(n_diagnoses), indexing="ij")
            t = years_in_bins(centres[np.minimum(p, a)].ravel(), centres[np.maximum(p, a)].ravel(), edges)
            rates = self.arrays["rates"][:, d.ravel(), :]  # (R, n, A)
            table = np.exp(np.einsum("na,rna->rn", t, rates)).reshape(len(self.regions), n_groups, n_groups,
                                                                      n_diagnoses)
        else:
            p, a, d = np.meshgrid(np.arange(n_groups), np.arange(n_groups), np.arange(n_diagnoses), indexing="ij")
            pred = self._svr_ratio(np.minimum(p, a), np.maximum(p, a), d)  # (A*A*D, R)
            table = pred.T.reshape(len(self.regions), n_groups, n_groups, n_diagnoses)
        table[:, np.arange(n_groups), np.arange(n_groups), :] = 1.0
        return table.astype(np.float32)

    def summary(self) -> pd.DataFrame:
        return pd.DataFrame({"region": list(self.regions), "cv_error": [self.cv_error[r] for r in self.regions]})

    # ---- the model file ---------------------------------------------------------------
    def to_state(self) -> dict:
        """Plain values and tensors for the model file (nothing pickled)."""
        arrays = {}
        for k, v in self.arrays.items():
            arrays[k] = [torch.as_tensor(x, dtype=torch.float64) for x in v] if isinstance(v, list) else \
                torch.as_tensor(v, dtype=torch.float64)
        return {"kind": self.kind, "regions": list(self.regions), "arrays": arrays,
                "cv_error": {k: float(v) for k, v in self.cv_error.items()}, "n_pairs": int(self.n_pairs)}

    @classmethod
    def from_state(cls, state) -> RegionalModel:
        """Validate and rebuild; :class:`ModelFileError` for anything but the expected
        plain values and tensors."""
        def bad(why):
            return ModelFileError(f"the regional model in the model file cannot be read ({why})")

        if not isinstance(state, dict):
            raise bad("not a table of fields")
        kind = state.get("kind")
        if kind not in ("rates", "svr"):
            raise bad(f"kind {kind!r} is not rates or svr")
        regions = state.get("regions")
        if not isinstance(regions, list) or not regions or not all(isinstance(r, str) for r in regions):
            raise bad("regions are not a list of names")
        cv = state.get("cv_error")
        if not isinstance(cv, dict) or set(cv) != set(regions) or not all(isinstance(v, float) for v in cv.values()):
            raise bad("cv_error is not a number per region")
        if not isinstance(state.get("n_pairs"), int):
            raise bad("n_pairs is not an integer")
        arrays = state.get("arrays")
        want = {"rates": {"edges": 1, "rates": 3}, "svr": {"support_vectors": "list", "dual_coef": "list",
                                                           "intercept": 1, "gamma": 1}}[kind]
        if not isinstance(arrays, dict) or set(arrays) != set(want):
            raise bad(f"a {kind} model needs the arrays {sorted(want)}")

        def array(v, ndim):
            if not torch.is_tensor(v) or not v.is_floating_point() or v.dim() != ndim:
                raise bad(f"expected a {ndim}-d floating-point tensor, found {type(v).__name__}")
            return v.numpy().astype(float)

        out = {}
        R = len(regions)
        for k, nd in want.items():
            if nd == "list":
                v = arrays[k]
                if not isinstance(v, list) or len(v) != R:
                    raise bad(f"{k} is not one array per region")
                out[k] = [array(x, 2 if k == "support_vectors" else 1) for x in v]
            else:
                out[k] = array(arrays[k], nd)
        if kind == "rates" and (out["rates"].shape[0] != R or out["rates"].shape[2] != len(out["edges"]) - 1):
            raise bad(f"rates of shape {out['rates'].shape} do not match {R} regions and the age bins")
        if kind == "svr" and (len(out["intercept"]) != R or len(out["gamma"]) != R):
            raise bad("intercept and gamma need one value per region")
        return cls(kind, tuple(regions), out, dict(cv), state["n_pairs"])


# --------------------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------------------
def _rates_design(table: pd.DataFrame, edges, n_diagnoses: int) -> np.ndarray:
    t = years_in_bins(table["from_age"].to_numpy(), table["to_age"].to_numpy(), edges)  # (n, A)
    onehot = np.eye(n_diagnoses)[table["diagnosis"].to_numpy(int)]  # (n, D)
    return np.concatenate([t] + [t * onehot[:, [k]] for k in range(n_diagnoses)], axis=1)


def _fit_rates(X, y, w, n_bins: int, n_diagnoses: int, smoothness: float) -> np.ndarray:
    """Penalised weighted least squares (scikit-learn): returns rates ``(D, A)``."""
    from sklearn.linear_model import LinearRegression

    A, D = n_bins, n_diagnoses
    scale = w.sum() / A
    diff = np.diff(np.eye(A), axis=0)  # (A-1, A): rate[k+1] - rate[k]
    blocks = []
    for b in range(D + 1):  # the pooled rate, then each diagnosis' departure
        rows = np.zeros((A - 1, A * (D + 1)))
        rows[:, b * A:(b + 1) * A] = diff
        blocks.append((rows, smoothness * scale))
        if b > 0:  # weak: decisive only for a diagnosis with no pairs in a bin
            rows = np.zeros((A, A * (D + 1)))
            rows[:, b * A:(b + 1) * A] = np.eye(A)
            blocks.append((rows, 0.01 * smoothness * scale))
    X_aug = np.concatenate([X] + [r for r, _ in blocks])
    y_aug = np.concatenate([y] + [np.zeros(len(r)) for r, _ in blocks])
    w_aug = np.concatenate([w] + [np.full(len(r), lam) for r, lam in blocks])
    coef = LinearRegression(fit_intercept=False).fit(X_aug, y_aug, sample_weight=w_aug).coef_
    base = coef[:A]
    return np.stack([base + coef[(k + 1) * A:(k + 2) * A] for k in range(D)])


def _groups_of(sub: pd.DataFrame) -> np.ndarray:
    return sub["subject"].to_numpy() if "subject" in sub else np.arange(len(sub))


def fit_regional_model(table: pd.DataFrame, cfg: TrainConfig, *, regions=None, n_splits: int = 5) -> RegionalModel:
    """Fit ``cfg.regional_model`` (``rates`` or ``svr``, module doc) per region on the
    training split's pairs and cross-validate it.

    ``table``: :func:`regional_pairs_table`'s columns (``subject``, ``region``,
    ``from_group``, ``to_group``, ``from_age``, ``to_age``, ``diagnosis``,
    ``log_ratio``, ``weight``). The reported error per region is the mean absolute
    error of the out-of-fold predicted ratio (``GroupKFold`` over subjects, at most
    ``n_splits`` folds, so one subject's pairs never sit on both sides; NaN with fewer
    than 2 subjects). ``regions``: the regions of the model, in order (default: the
    table's); a region without pairs (not on the slices) keeps the ratio 1 and a NaN
    error.
    """
    from sklearn.model_selection import GroupKFold

    need = {"region", "from_group", "to_group", "from_age", "to_age", "diagnosis", "log_ratio"}
    if not need <= set(table.columns):
        raise ValueError(f"the regional table needs columns {sorted(need)}")
    if cfg.regional_model == "svr":
        table = table[table["to_group"] > table["from_group"]]
    if table.empty:
        raise DaniNetError("no longitudinal pairs (two scans of a subject at different ages"
                           + (" in different age groups" if cfg.regional_model == "svr" else "")
                           + "): cannot fit the regional model (L_reg needs longitudinal subjects; "
                           "the preset 'base' or 'C' trains without it)")
    regions = tuple(dict.fromkeys(table["region"])) if regions is None else tuple(regions)
    A, D = cfg.n_groups, len(cfg.diagnoses)
    per_region, cv = [], {}

    def fit(sub):
        if cfg.regional_model == "rates":
            X = _rates_design(sub, cfg.bin_edges, D)
            w = sub["weight"].to_numpy(float) if "weight" in sub else np.ones(len(sub))
            return _fit_rates(X, sub["log_ratio"].to_numpy(float), w, A, D, cfg.regional_smoothness)
        from sklearn.svm import SVR

        X = sub[["from_group", "to_group", "diagnosis"]].to_numpy(float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = SVR(C=cfg.svr_C, epsilon=cfg.svr_epsilon, gamma="scale").fit(X, np.exp(sub["log_ratio"]))
        return {"support_vectors": m.support_vectors_, "dual_coef": m.dual_coef_[0],
                "intercept": float(m.intercept_[0]), "gamma": float(m._gamma)}

    def model_of(params_list, names):
        if cfg.regional_model == "rates":
            arrays = {"edges": np.asarray(cfg.bin_edges, float), "rates": np.stack(params_list)}
        else:
            arrays = {"support_vectors": [p["support_vectors"] for p in params_list],
                      "dual_coef": [p["dual_coef"] for p in params_list],
                      "intercept": np.array([p["intercept"] for p in params_list]),
                      "gamma": np.array([p["gamma"] for p in params_list])}
        return RegionalModel(cfg.regional_model, tuple(names), arrays, {n: float("nan") for n in names}, 0)

    for region in regions:
        sub = table[table["region"] == region].reset_index(drop=True)
        if sub.empty:
            LOGGER.warning("regional model: no pairs for %s (not on the training slices): ratio 1", region)
            per_region.append(np.zeros((D, A)) if cfg.regional_model == "rates" else
                              {"support_vectors": np.zeros((0, 3)), "dual_coef": np.zeros(0), "intercept": 1.0,
                               "gamma": 1.0})
            cv[region] = float("nan")
            continue
        groups = _groups_of(sub)
        k = min(n_splits, len(np.unique(groups)))
        if k >= 2:
            pred = np.empty(len(sub))
            for tr, te in GroupKFold(n_splits=k).split(sub, groups=groups):
                part = model_of([fit(sub.iloc[tr])], [region])
                pred[te] = part.predict_log_ratio(sub["from_age"].to_numpy()[te], sub["to_age"].to_numpy()[te],
                                                  sub["diagnosis"].to_numpy()[te], cfg)[:, 0]
            cv[region] = float(np.mean(np.abs(np.exp(pred) - np.exp(sub["log_ratio"].to_numpy(float)))))
        else:
            cv[region] = float("nan")
        per_region.append(fit(sub))
        LOGGER.info("regional model (%s) %s: %d pairs, cross-validated MAE of the ratio %.4f",
                    cfg.regional_model, region, len(sub), cv[region])
    model = model_of(per_region, regions)
    model.cv_error = cv
    model.n_pairs = int(len(table) // max(len(regions), 1))
    return model
