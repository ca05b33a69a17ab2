"""``OUTPUT_DIR/logs/CITATION.md``: a methods paragraph made from the options a run used.

As fMRIPrep's boilerplate: the ``__desc__`` paragraphs of the workflows that ran (niworkflows'
``LiterateWorkflow.visit_desc``), preceded by the software and its version and followed
by what the options chose (template, backend, model configuration) and the versions of
the tools used. Each run rewrites the file and keeps a copy in its ``logs/<run id>/``.
"""

from __future__ import annotations

from pathlib import Path

from ..data.resources import DEFAULT_TEMPLATE


def _versions_line() -> str:
    from ..interfaces.bids import software_versions

    versions = software_versions()
    return ", ".join(f"{name} {ver}" for name, ver in versions.items())


def model_sentence(config: dict, name: str) -> str:
    """One sentence on a training configuration (the fields a reader needs)."""
    weights = []
    for key in ("weight_def", "weight_vox", "weight_reg", "weight_adv_z", "weight_adv_b", "weight_tv"):
        w = config.get(key)
        if isinstance(w, dict):
            weights.append(f"{key.removeprefix('weight_')} {w.get('value', w.get('final', '?'))}")
    parts = [f"{config.get('image_size', '?')} x {config.get('image_size', '?')} px axial slices",
             f"{config.get('n_bins', '?')} age groups from {config.get('age_min', '?')} to "
             f"{config.get('age_max', '?')} years",
             f"diagnoses {', '.join(config.get('diagnoses', [])) or '?'}",
             f"latent size {config.get('z_dim', '?')}, width {config.get('width', '?')}",
             f"batch {config.get('batch_size', '?')}, {config.get('steps', '?')} steps"]
    text = f"The model configuration `{name}` used " + "; ".join(parts)
    if weights:
        text += "; loss weights " + ", ".join(weights)
    return text + "."


def citation_text(*, level: str, workflow=None, template: str = DEFAULT_TEMPLATE,
                  backend: str | None = None, model_name: str | None = None,
                  model_config: dict | None = None, model_file: str | None = None) -> str:
    """The methods paragraph (Markdown) of one run."""
    from .. import __version__
    from ..interfaces.bids import code_url

    url = code_url()
    head = (f"Results included in this manuscript come from processing performed using "
            f"*daninet_pipeline* {__version__}" + (f" ({url})" if url else "")
            + ", a BIDS App built on Nipype that implements DaniNet (Ravi et al., MICCAI 2019; "
            "Medical Image Analysis 2022).")
    paragraphs = [f"# Methods ({level} level)", head]
    if workflow is not None and hasattr(workflow, "visit_desc"):
        desc = workflow.visit_desc().strip()
        if desc:
            paragraphs.append(desc)
    chosen = [f"The template was {template} (shipped with nilearn; no file was downloaded)."]
    if backend:
        chosen.append(f"Pre-processing used the {backend} backend.")
    if model_file:
        chosen.append(f"Simulations used the model file `{Path(model_file).name}`"
                      + (f" (configuration `{model_name}`)." if model_name else "."))
    paragraphs.append(" ".join(chosen))
    if model_config:
        paragraphs.append(model_sentence(model_config, model_name or "?"))
    paragraphs.append(f"Software: {_versions_line()}.")
    paragraphs.append("This paragraph was written by the software from the options of the run; "
                      "it may be copied into a manuscript unchanged.")
    return "\n\n".join(paragraphs) + "\n"


def write_citation(output_dir, run_dir, text: str) -> Path:
    """``text`` as ``OUTPUT_DIR/logs/CITATION.md`` and ``run_dir/CITATION.md``, each
    replaced atomically (the tasks of a SLURM array share OUTPUT_DIR)."""
    from ..atomic import write_text

    out = Path(output_dir) / "logs" / "CITATION.md"
    for target in (out, Path(run_dir) / "CITATION.md"):
        write_text(target, text)
    return out
