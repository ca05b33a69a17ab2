"""Operations on binary masks shared by the steps and the packaged resources."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected component (face connectivity) of a boolean ``mask``; an
    empty mask or one with a single component is returned as it is (as booleans).

    >>> m = np.zeros((7, 1, 1), bool); m[0:2] = m[3:6] = True
    >>> largest_component(m)[:, 0, 0].astype(int).tolist()
    [0, 0, 0, 1, 1, 1, 0]
    """
    mask = np.asarray(mask, bool)
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (1 + int(np.argmax(sizes)))
