"""The derivatives sink and ``dataset_description.json``."""

from __future__ import annotations

import filecmp
import gzip
import json
import os
import shutil
import uuid
from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    Str,
    TraitedSpec,
)
from niworkflows.interfaces.bids import DerivativesDataSink as _NiworkflowsSink

from ..bids.naming import path_patterns


def _same_content(new: Path, old: Path) -> bool:
    """Whether ``old`` already holds what ``new`` holds (a ``.gz`` by its uncompressed
    bytes: the gzip header carries a time stamp)."""
    if not old.is_file():
        return False
    if filecmp.cmp(new, old, shallow=False):
        return True
    if new.suffix == ".gz":
        try:
            with gzip.open(new) as a, gzip.open(old) as b:
                while True:
                    x, y = a.read(1 << 20), b.read(1 << 20)
                    if x != y:
                        return False
                    if not x:
                        return True
        except (OSError, EOFError):
            return False
    return False


def place(staged: Path, target: Path) -> Path:
    """Move ``staged`` onto ``target`` atomically (:func:`os.replace`), unless ``target``
    already holds the same content: then it stays untouched (its time stamp too)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if _same_content(staged, target):
        staged.unlink()
    else:
        os.replace(staged, target)
    return target


class DerivativesDataSink(_NiworkflowsSink):
    """niworkflows' sink writing straight into ``base_directory`` (the BIDS App's
    OUTPUT_DIR), atomically, on every run.

    Files are first written under a hidden staging folder inside ``base_directory``
    (same file system) and then moved onto their final names with :func:`os.replace`, so
    no half-written file ever carries a final name. The sink always runs (as
    niworkflows' own), so a run after OUTPUT_DIR was deleted writes every file again
    from the work folder's cache; a file whose content is already there is left as it is.
    """

    out_path_base = ""
    _always_run = True
    _file_patterns = path_patterns()  # niworkflows' and the QC table's

    def _run_interface(self, runtime):
        from nipype.interfaces.base import isdefined

        final = Path(self.inputs.base_directory if isdefined(self.inputs.base_directory)
                     else runtime.cwd).absolute()
        staging = final / f".daninet-staging-{uuid.uuid4().hex}"
        self.inputs.base_directory = str(staging)
        try:
            runtime = super()._run_interface(runtime)
            for key in ("out_file", "out_meta"):
                paths = self._results.get(key)
                if not paths:
                    continue
                single = isinstance(paths, (str, os.PathLike))
                moved = []
                for path in [paths] if single else paths:
                    target = final / Path(path).relative_to(staging)
                    moved.append(str(place(Path(path), target)))
                self._results[key] = moved[0] if single else moved
        finally:
            self.inputs.base_directory = str(final)
            shutil.rmtree(staging, ignore_errors=True)
        return runtime


class _ExportInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="file made in a node's working folder")
    base_directory = Str(mandatory=True, desc="OUTPUT_DIR")
    relative_path = Str(mandatory=True, desc="where the file goes, relative to base_directory")


class _ExportOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="the written file")


class ExportFile(SimpleInterface):
    """Sink of a derivative that BIDS has no name for (``models/<name>/model.pt``, its
    tables and card): copy ``in_file`` to ``base_directory/relative_path`` atomically,
    on every run (as :class:`DerivativesDataSink`); same content: left as it is."""

    input_spec = _ExportInputSpec
    output_spec = _ExportOutputSpec
    _always_run = True

    def _run_interface(self, runtime):
        target = Path(self.inputs.base_directory).absolute() / self.inputs.relative_path
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f".daninet-staging-{uuid.uuid4().hex}-{target.name}")
        try:
            shutil.copyfile(self.inputs.in_file, staged)
            place(staged, target)
        finally:
            staged.unlink(missing_ok=True)
        self._results["out_file"] = str(target)
        return runtime


def software_versions() -> dict[str, str]:
    """Versions of the software that makes the derivatives (for sidecars)."""
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__

    out = {"daninet_pipeline": __version__}
    for name in ("nipype", "nibabel", "numpy", "scipy", "SimpleITK", "deepbet", "torch",
                 "nilearn", "niworkflows"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


#: container kinds ``DANINET_CONTAINER`` may name before its first colon
CONTAINER_TYPES = ("docker", "apptainer", "singularity")


def container_of(value: str | None) -> dict | None:
    """``GeneratedBy.Container`` from ``DANINET_CONTAINER`` (``<type>:<tag>``, which the
    image definitions in ``containers/`` set; a value without a known type is a Docker tag).

    >>> container_of("docker:daninet:0.1.0")
    {'Type': 'docker', 'Tag': 'daninet:0.1.0'}
    >>> container_of("apptainer:daninet-0.1.0.sif")
    {'Type': 'apptainer', 'Tag': 'daninet-0.1.0.sif'}
    >>> container_of("lab/daninet:1") is None, container_of("lab/daninet:1")["Type"]
    (False, 'docker')
    """
    if not value:
        return None
    kind, _, tag = value.partition(":")
    if kind in CONTAINER_TYPES and tag:
        return {"Type": kind, "Tag": tag}
    return {"Type": "docker", "Tag": value}


def code_url() -> str | None:
    """Where the code is: ``DANINET_CODE_URL`` (the image sets it from its build's git
    remote), else the installed package's home page or ``Source`` project URL; None when
    neither is known."""
    from importlib.metadata import PackageNotFoundError, metadata

    url = os.environ.get("DANINET_CODE_URL", "").strip()
    if url and url != "unknown":
        return url
    try:
        meta = metadata("daninet_pipeline")
    except PackageNotFoundError:
        return None
    for entry in meta.get_all("Project-URL") or []:
        label, _, value = entry.partition(",")
        if label.strip().lower() in ("source", "source code", "code") and value.strip():
            return value.strip()
    home = meta.get("Home-page")
    return home if home and home != "UNKNOWN" else None


def generated_by(backend: str = "embedded") -> dict:
    """``GeneratedBy`` entry of this run: name, version, description, ``CodeURL`` when
    known (:func:`code_url`) and ``Container`` when run in the image (:func:`container_of`)."""
    from .. import __version__

    generated = {"Name": "daninet_pipeline", "Version": __version__,
                 "Description": f"DaniNet pre-processing, {backend} backend"}
    url = code_url()
    if url:
        generated["CodeURL"] = url
    container = container_of(os.environ.get("DANINET_CONTAINER"))
    if container:
        generated["Container"] = container
    return generated


def write_dataset_description(output_dir: str | os.PathLike, *, bids_dir=None,
                              backend: str = "embedded") -> Path:
    """Write ``OUTPUT_DIR/dataset_description.json`` (BIDS derivative), atomically.

    An existing file written by daninet is replaced; ``GeneratedBy`` is :func:`generated_by`.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    payload = {"Name": "DaniNet pre-processed T1w images", "BIDSVersion": "1.9.0",
               "DatasetType": "derivative", "GeneratedBy": [generated_by(backend)]}
    if bids_dir is not None:
        payload["SourceDatasets"] = [{"URL": Path(bids_dir).absolute().as_uri()}]
        payload["DatasetLinks"] = {"raw": Path(bids_dir).absolute().as_uri()}
    target = output_dir / "dataset_description.json"
    tmp = output_dir / f".dataset_description.{uuid.uuid4().hex}.json"
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, target)
    return target
