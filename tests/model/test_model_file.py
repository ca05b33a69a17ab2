"""A model file travels between labs: loading one never runs code from it."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from daninet_pipeline.errors import ModelFileError
from daninet_pipeline.model.daninet import DaniNetModel
from daninet_pipeline.model.modelfile import load_model_file

from .test_model_fidelity import toy_pairs


class _Plant:
    """A pickle that creates ``path`` when it is unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def _bytes_and_array_fields(state, prefix=()):
    """Paths of every bytes value and every field of the regional model in ``state``."""
    out = []
    if isinstance(state, dict):
        for k, v in state.items():
            here = prefix + (k,)
            if isinstance(v, (bytes, bytearray)):
                out.append(here)
            elif k == "regional" and isinstance(v, dict):
                out += [here + (kk,) for kk in v]
                out += [here + ("arrays", kk) for kk in v.get("arrays", {})]
            else:
                out += _bytes_and_array_fields(v, here)
    return out


def _set(state, path, value):
    for k in path[:-1]:
        state = state[k]
    state[path[-1]] = value


@pytest.fixture
def model_with_regional(tiny_cfg, tmp_path):
    from daninet_pipeline.model import regional

    cfg = tiny_cfg
    reg = regional.fit_regional_model(toy_pairs(cfg), cfg)
    model = DaniNetModel(cfg, ratio_table=reg.ratio_table(cfg.n_groups, len(cfg.diagnoses)), regional=reg)
    path = model.save_model_file(tmp_path / "model.pt")
    return path


def test_planted_pickles_in_a_model_file_never_run(model_with_regional, tmp_path):
    state = torch.load(model_with_regional, map_location="cpu", weights_only=True)
    fields = _bytes_and_array_fields(state)
    assert fields, "the model file has a regional model"
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Plant(marker))
    for path in fields:
        planted = copy.deepcopy(state)
        _set(planted, path, payload)
        bad = tmp_path / ("planted-" + "-".join(map(str, path)) + ".pt")
        torch.save(planted, bad)
        error = None
        try:
            DaniNetModel.from_model_file(bad)
        except ModelFileError as exc:
            error = str(exc)
        assert not marker.exists(), f"loading a pickle planted in {'.'.join(map(str, path))} ran code"
        assert error is not None, f"a pickle planted in {'.'.join(map(str, path))} was accepted"
        assert "\n" not in error and str(bad) in error


def test_a_model_file_holds_no_pickled_bytes(model_with_regional):
    state = torch.load(model_with_regional, map_location="cpu", weights_only=True)

    def walk(v):
        if isinstance(v, (bytes, bytearray)):
            raise AssertionError("bytes in a model file")
        if isinstance(v, dict):
            [walk(x) for x in v.values()]
        elif isinstance(v, (list, tuple)):
            [walk(x) for x in v]

    walk(state)


def test_an_older_format_is_refused_in_one_line(model_with_regional, tmp_path):
    state = torch.load(model_with_regional, map_location="cpu", weights_only=True)
    state["format_version"] = 1
    old = tmp_path / "old.pt"
    torch.save(state, old)
    from daninet_pipeline.model.modelfile import MODEL_FORMAT_VERSION

    assert MODEL_FORMAT_VERSION >= 2
    with pytest.raises(ModelFileError, match="format 1") as err:
        load_model_file(old)
    assert "\n" not in str(err.value)
