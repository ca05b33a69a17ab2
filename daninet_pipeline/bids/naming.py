"""Names of every derivative the app writes: the only place they are made.

A derivative's name is the raw T1w's entities (``sub``, ``ses``, ``acq``, ``ce``, ``rec``,
``run``) plus the entities of its kind (:data:`DERIVATIVES`), built with pybids'
``build_path`` on niworkflows' derivative patterns: the same patterns niworkflows'
``DerivativesDataSink`` uses, so the sinks (which take their entities from
:func:`sink_entities`) and the readers (:func:`derivative_path`) agree by construction.

>>> derivative_relpath("/d/sub-01/ses-M000/anat/sub-01_ses-M000_run-01_T1w.nii.gz", "preproc")
'sub-01/ses-M000/anat/sub-01_ses-M000_run-01_space-MNI152NLin2009aSym_desc-preproc_T1w.nii.gz'
>>> derivative_relpath("/d/sub-01/anat/sub-01_acq-mprage_rec-norm_T1w.nii.gz", "xfm")
'sub-01/anat/sub-01_acq-mprage_rec-norm_from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.txt'
>>> derivative_relpath("/d/sub-01/ses-M000/anat/sub-01_ses-M000_run-01_T1w.nii.gz", "qc")
'sub-01/ses-M000/anat/sub-01_ses-M000_run-01_desc-qc_T1w.tsv'
>>> simulation_desc("full-residual", 75.0)
'simfullresidualAge75p0'
>>> simulation_desc("demo", 80, "AD")
'simdemoAge80p0AD'
"""

from __future__ import annotations

import re
from pathlib import Path

from ..data.resources import DEFAULT_TEMPLATE

#: Entities of the raw T1w that every derivative of it keeps.
SOURCE_ENTITIES = ("subject", "session", "acquisition", "ceagent", "reconstruction", "run")

#: Entities of each kind of derivative (``{template}`` is filled in).
DERIVATIVES = {
    "preproc": {"space": "{template}", "desc": "preproc", "suffix": "T1w", "extension": ".nii.gz"},
    "mask": {"desc": "brain", "suffix": "mask", "extension": ".nii.gz"},
    "mask_std": {"space": "{template}", "desc": "brain", "suffix": "mask", "extension": ".nii.gz"},
    "xfm": {"from": "T1w", "to": "{template}", "mode": "image", "suffix": "xfm", "extension": ".txt"},
    "report": {"datatype": "figures", "space": "{template}", "desc": "preproc", "suffix": "T1w",
               "extension": ".svg"},
    # one row of QC measures (daninet_pipeline.qc.measures.QC_MEASURES): :data:`QC_PATTERN`
    "qc": {"desc": "qc", "suffix": "T1w", "extension": ".tsv"},
    # simulated images: ``desc`` from :func:`simulation_desc`
    "simulated": {"space": "{template}", "suffix": "T1w", "extension": ".nii.gz"},
    "simulated_native": {"suffix": "T1w", "extension": ".nii.gz"},
}

#: Files of a trained model under ``OUTPUT_DIR/models/<name>/`` (not BIDS: ``.bidsignore``).
MODEL_FILES = ("split.tsv", "model.pt", "losses.tsv", "group_eval.tsv", "group_eval.md",
               "model_card.md", "qc.tsv", "qc_outliers.tsv", "excluded_sessions.tsv")

#: A session's QC table, which niworkflows' patterns have no name for (a ``.tsv`` of a
#: T1w); the sink (:class:`daninet_pipeline.interfaces.bids.DerivativesDataSink`) and
#: :func:`derivative_relpath` both use :func:`path_patterns`, so they agree.
QC_PATTERN = ("sub-{subject}[/ses-{session}]/{datatype<anat>|anat}/sub-{subject}[_ses-{session}]"
              "[_acq-{acquisition}][_ce-{ceagent}][_rec-{reconstruction}][_run-{run}]"
              "_desc-{desc<qc>}_{suffix<T1w>}{extension<.tsv>}")


def path_patterns() -> tuple[str, ...]:
    """niworkflows' derivative patterns, and :data:`QC_PATTERN` first."""
    from niworkflows.interfaces.bids import BIDS_DERIV_PATTERNS

    return (QC_PATTERN, *BIDS_DERIV_PATTERNS)


def source_entities(source_file) -> dict:
    """The entities of a raw T1w that its derivatives keep (:data:`SOURCE_ENTITIES`)."""
    from bids.layout import parse_file_entities

    # by the file name alone (a leading "/": pybids' patterns start at a separator)
    entities = parse_file_entities("/" + Path(source_file).name)
    return {k: entities[k] for k in SOURCE_ENTITIES if entities.get(k) is not None}


def sink_entities(kind: str, template: str = DEFAULT_TEMPLATE, **extra) -> dict:
    """Entities a ``DerivativesDataSink`` of ``kind`` sets (its constructor's keywords);
    the extension is the sink's business (``compress``)."""
    if kind not in DERIVATIVES:
        raise KeyError(f"unknown derivative kind {kind!r}; known: {', '.join(DERIVATIVES)}")
    out = {k: v.format(template=template) for k, v in DERIVATIVES[kind].items() if k != "extension"}
    out.update(extra)
    return out


def derivative_relpath(source_file, kind: str, *, template: str = DEFAULT_TEMPLATE, **extra) -> str:
    """Path, relative to OUTPUT_DIR, of the ``kind`` derivative of the raw T1w ``source_file``
    (``extra`` entities, e.g. ``desc`` of a simulated image, override the kind's)."""
    from bids.layout.writing import build_path

    entities = {"datatype": "anat", **source_entities(source_file),
                **sink_entities(kind, template), "extension": DERIVATIVES[kind]["extension"],
                **extra}
    path = build_path(entities, path_patterns=path_patterns(), strict=True)
    if not path:
        raise ValueError(f"no BIDS derivative name for {kind} of {source_file} ({entities})")
    return path


def derivative_path(output_dir, source_file, kind: str, *, template: str = DEFAULT_TEMPLATE,
                    **extra) -> Path:
    """Absolute path of the ``kind`` derivative of ``source_file`` under ``output_dir``."""
    return Path(output_dir) / derivative_relpath(source_file, kind, template=template, **extra)


def model_label(name: str) -> str:
    """A model's name (its configuration's) as a BIDS label: alphanumerics, lower case.

    >>> model_label("full-residual")
    'fullresidual'
    """
    label = re.sub(r"[^A-Za-z0-9]", "", Path(str(name)).stem).lower()
    if not label:
        raise ValueError(f"model name {name!r} has no letter or digit for a BIDS label")
    return label


def model_name(config) -> str:
    """The name of a configuration (a preset name or a JSON file's stem)."""
    return Path(str(config)).stem


def model_dir(output_dir, config) -> Path:
    """``OUTPUT_DIR/models/<config name>``: where a configuration's model files go."""
    return Path(output_dir) / "models" / model_name(config)


def simulation_desc(model: str, age: float, diagnosis: str | None = None) -> str:
    """``desc`` label of a simulated image: ``sim<model label>Age<whole>p<tenth>[<DX>]``,
    the diagnosis only for a counterfactual one (so several models' images of one
    subject sit side by side)."""
    whole, tenth = divmod(int(round(float(age) * 10)), 10)
    return f"sim{model_label(model)}Age{whole}p{tenth}" + (diagnosis or "")


def model_name_of(model_file) -> str:
    """The name of a trained model from its file: ``models/<name>/model.pt`` as the group
    level writes it (the configuration's name), otherwise the file's stem.

    >>> model_name_of("/out/models/full-residual/model.pt")
    'full-residual'
    >>> model_name_of("/lab/ad-v2.pt")
    'ad-v2'
    """
    path = Path(model_file)
    return path.parent.name if path.name == "model.pt" and path.parent.name else path.stem
