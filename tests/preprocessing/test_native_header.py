"""Native-space derivatives keep the raw image's header, so ITK tools take them together
(issue 12, item 5): a real scan whose pixdim (1.0) and sform (1.0000025) disagree, with
qform/sform codes 0/2, and its brain mask written as the participant level writes it."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "real_head_a_T1w.nii.gz"
if not REAL.is_file():
    REAL = Path("/work/shared/data/real/real_head_a_T1w.nii.gz")


@pytest.fixture
def odd_header_t1w(tmp_path):
    """The real scan in a BIDS folder, its sform scaled by 1.0000025, pixdim kept at 1.0,
    codes qform 0 / sform 2 (as some converters write)."""
    raw = nib.load(REAL)
    affine = raw.affine.copy()
    affine[:3, :3] *= 1.0000025
    img = nib.Nifti1Image(np.asarray(raw.dataobj), affine, raw.header)
    img.header.set_sform(affine, 2)
    img.header["qform_code"] = 0
    img.header["pixdim"][1:4] = 1.0
    path = tmp_path / "bids" / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    path.parent.mkdir(parents=True)
    img.to_filename(path)
    return path


def test_native_mask_occupies_the_raw_images_physical_space_in_itk(odd_header_t1w, tmp_path):
    import SimpleITK as sitk
    from nipype.pipeline import engine as pe

    from daninet_pipeline.interfaces.preprocessing import RestoreOrientation, ValidateT1w
    from daninet_pipeline.workflows.outputs import init_ds_preproc_wf

    # a brain mask on the RAS+ grid the pipeline works on (here: a threshold of the head)
    ras = ValidateT1w(in_file=str(odd_header_t1w)).run(cwd=str(tmp_path)).outputs.out_file
    img = nib.load(ras)
    mask = (np.asarray(img.dataobj) > np.percentile(img.dataobj, 70)).astype(np.uint8)
    mask_ras = tmp_path / "mask_ras.nii.gz"
    nib.Nifti1Image(mask, img.affine).to_filename(mask_ras)
    # back to the raw grid and into OUTPUT_DIR, by the pipeline's own nodes
    restore = pe.Node(RestoreOrientation(in_file=str(mask_ras), reference=str(odd_header_t1w)),
                      name="restore_mask", base_dir=str(tmp_path / "work"))
    restored = restore.run().outputs.out_file
    sink = init_ds_preproc_wf(output_dir=str(tmp_path / "out")).get_node("ds_mask")
    sink.base_dir = str(tmp_path / "work")
    sink.inputs.in_file = restored
    sink.inputs.source_file = str(odd_header_t1w)
    written = sink.run().outputs.out_file
    assert Path(written).name == "sub-01_desc-brain_mask.nii.gz"

    raw_hdr, mask_hdr = nib.load(odd_header_t1w).header, nib.load(written).header
    assert (int(mask_hdr["qform_code"]), int(mask_hdr["sform_code"])) == (0, 2)
    np.testing.assert_array_equal(mask_hdr["pixdim"][1:4], raw_hdr["pixdim"][1:4])
    np.testing.assert_array_equal(mask_hdr.get_sform(), raw_hdr.get_sform())
    assert mask_hdr.get_data_dtype() == np.uint8

    raw_itk = sitk.ReadImage(str(odd_header_t1w))
    mask_itk = sitk.ReadImage(written)
    assert mask_itk.GetSpacing() == raw_itk.GetSpacing()
    masked = sitk.Mask(raw_itk, mask_itk)  # ITK refuses images in different physical spaces
    assert sitk.GetArrayViewFromImage(masked).any()
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([1])
    shrink = [4] * 3
    n4.Execute(sitk.Shrink(sitk.Cast(raw_itk, sitk.sitkFloat32), shrink), sitk.Shrink(mask_itk, shrink))
