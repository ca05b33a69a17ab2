import numpy as np
import nibabel as nib
import pytest

from daninet_pipeline.errors import ImageError
from daninet_pipeline.model.data import SliceStore, assemble_volume, brain_slice_indices, extract_slices


def test_extract_slices_pads_to_square_and_resamples():
    vol = np.zeros((40, 60, 7), np.float32)
    vol[10:30, :, 3] = 2.0  # a band across the whole second axis
    s = extract_slices(vol, 30, indices=[3])
    assert s.shape == (1, 30, 30)
    # 40 x 60 padded to 60 x 60 (10 rows each side), band rows 20..40 of 60 -> 10..20 of 30
    assert np.allclose(s[0, 11:19, 2:28], 2.0, atol=1e-5)
    assert np.allclose(s[0, :9], 0) and np.allclose(s[0, 21:], 0)


def test_extract_along_another_axis():
    vol = np.random.default_rng(0).random((8, 8, 8)).astype(np.float32)
    assert np.allclose(extract_slices(vol, 8, axis=0)[2], vol[2])
    assert np.allclose(extract_slices(vol, 8, axis=1)[5], vol[:, 5, :])
    with pytest.raises(ImageError):
        extract_slices(np.zeros((4, 4)), 8)


def test_assemble_inverts_extract():
    rng = np.random.default_rng(1)
    vol = rng.random((20, 26, 9)).astype(np.float32)
    back = assemble_volume(extract_slices(vol, 26, indices=range(2, 7)), vol.shape, indices=range(2, 7), base=vol * 0 - 1)
    assert np.allclose(back[:, :, 2:7], vol[:, :, 2:7], atol=1e-5)
    assert np.all(back[:, :, :2] == -1) and np.all(back[:, :, 7:] == -1)
    # down- then up-sampling a smooth image keeps it close
    yy, xx = np.mgrid[0:64, 0:64]
    smooth = np.repeat((np.sin(xx / 9.0) * np.cos(yy / 11.0))[:, :, None], 2, axis=2).astype(np.float32)
    approx = assemble_volume(extract_slices(smooth, 32), smooth.shape)
    assert np.abs(approx - smooth).max() < 0.1


def test_brain_slice_indices():
    vol = np.zeros((10, 10, 10))
    vol[2:8, 2:8, 3:7] = 1
    vol[5, 5, 1] = 1
    assert brain_slice_indices(vol).tolist() == [3, 4, 5, 6]
    assert brain_slice_indices(vol, fraction=0.01).tolist() == [1, 3, 4, 5, 6]
    with pytest.raises(ImageError):
        brain_slice_indices(np.zeros((3, 3, 3)))


def test_store_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    vols = [rng.random((12, 16, 10)).astype(np.float32) * 1.5 for _ in range(3)]
    for v in vols:
        v[:, :, :2] = 0  # two empty slices
    recs = [{"image": nib.Nifti1Image(v, aff), "subject": "01", "session": f"M{i:02d}", "age": 70.0 + i,
             "diagnosis": "CN"} for i, v in enumerate(vols)]
    recs[2]["image"] = vols[2]  # a plain array is accepted too
    store = SliceStore.build(tmp_path / "s", recs, image_size=16, intensity_max=1.5)
    assert store.slice_indices.tolist() == list(range(2, 10))
    assert len(store) == 3 * 8 and store.slices.dtype == np.float16
    assert isinstance(store.slices, np.memmap)
    assert list(store.index.columns) == ["row", "volume", "subject", "session", "age", "diagnosis", "slice",
                                         "position"]
    assert store.index["subject"].tolist()[0] == "01"  # read as text, not as a number
    again = SliceStore(tmp_path / "s")
    rows = np.array([17, 3, 8])
    want = np.stack([extract_slices(vols[r // 8] / 1.5, 16, indices=[2 + r % 8])[0] for r in rows])
    np.testing.assert_allclose(again.read(rows), want, atol=2e-3)
    assert again.index.loc[17, "session"] == "M02" and again.index.loc[17, "slice"] == 3
    assert again.index.loc[17, "position"] == pytest.approx(3 / 9)
    np.testing.assert_allclose(again.affine, aff)
    assert again.volumes()["age"].tolist() == [70.0, 71.0, 72.0]


def test_store_refuses_another_grid(tmp_path):
    recs = [{"image": np.ones((4, 4, 4)), "subject": "1", "session": "1", "age": 70, "diagnosis": "CN"},
            {"image": np.ones((4, 4, 5)), "subject": "1", "session": "2", "age": 71, "diagnosis": "CN"}]
    with pytest.raises(ImageError, match="shape"):
        SliceStore.build(tmp_path / "s", recs, image_size=16)
    with pytest.raises(FileNotFoundError):
        SliceStore(tmp_path / "nothing")
