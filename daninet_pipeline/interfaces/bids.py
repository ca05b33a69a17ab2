"""The derivatives sink and ``dataset_description.json``."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from niworkflows.interfaces.bids import DerivativesDataSink as _NiworkflowsSink


class DerivativesDataSink(_NiworkflowsSink):
    """niworkflows' sink writing straight into ``base_directory`` (the BIDS App's
    OUTPUT_DIR), atomically.

    Files are first written under a hidden staging folder inside ``base_directory``
    (same file system) and then moved onto their final names with :func:`os.replace`, so
    no half-written file ever carries a final name. The node is cached like any other:
    a rerun with unchanged inputs does not write again.
    """

    out_path_base = ""
    _always_run = False

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
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(path, target)
                    moved.append(str(target))
                self._results[key] = moved[0] if single else moved
        finally:
            self.inputs.base_directory = str(final)
            shutil.rmtree(staging, ignore_errors=True)
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


def write_dataset_description(output_dir: str | os.PathLike, *, bids_dir=None,
                              backend: str = "embedded") -> Path:
    """Write ``OUTPUT_DIR/dataset_description.json`` (BIDS derivative), atomically.

    An existing file written by daninet is replaced; ``GeneratedBy`` names the package,
    its version, the pre-processing backend and, when run in a container, its image.
    """
    from .. import __version__

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    generated = {"Name": "daninet_pipeline", "Version": __version__,
                 "Description": f"DaniNet pre-processing, {backend} backend"}
    container = os.environ.get("DANINET_CONTAINER")
    if container:
        generated["Container"] = {"Type": "docker", "Tag": container}
    payload = {"Name": "DaniNet pre-processed T1w images", "BIDSVersion": "1.9.0",
               "DatasetType": "derivative", "GeneratedBy": [generated]}
    if bids_dir is not None:
        payload["SourceDatasets"] = [{"URL": Path(bids_dir).absolute().as_uri()}]
        payload["DatasetLinks"] = {"raw": Path(bids_dir).absolute().as_uri()}
    target = output_dir / "dataset_description.json"
    tmp = output_dir / f".dataset_description.{uuid.uuid4().hex}.json"
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, target)
    return target
