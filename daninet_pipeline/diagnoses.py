"""The diagnosis labels the model is conditioned on and how datasets' labels fold into
them: the one definition that the BIDS reader, the model configuration and the
synthetic dataset all use.

ADNI's six labels fold into three (the authors folded them into four): SMC -> CN,
EMCI/LMCI -> MCI. Other spellings found in datasets (``NL``, ``Dementia``) fold too.

>>> DIAGNOSES
('CN', 'MCI', 'AD')
>>> DATASET_LABELS["EMCI"], DATASET_LABELS["DEMENTIA"]
('MCI', 'AD')
"""

from __future__ import annotations

#: The model's diagnosis labels, in order of severity.
DIAGNOSES = ("CN", "MCI", "AD")
#: ADNI's other labels, folded into :data:`DIAGNOSES` (the model configuration's default).
FOLDING = (("SMC", "CN"), ("EMCI", "MCI"), ("LMCI", "MCI"))
#: Every label the BIDS reader accepts (upper case) -> its model label.
DATASET_LABELS = {**{d: d for d in DIAGNOSES}, **dict(FOLDING), "NL": "CN", "DEMENTIA": "AD"}
