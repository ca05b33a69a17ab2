"""Exceptions of daninet_pipeline: one base class, one subclass per kind of user error."""


class DaniNetError(Exception):
    """Base class of every error the package raises on purpose."""


class BIDSInputError(DaniNetError, ValueError):
    """The input dataset is not usable: the message names the file (and row)."""


class ImageError(DaniNetError, ValueError):
    """An image cannot be used (corrupt, 4D where 3D is expected, empty)."""


class ModelFileError(DaniNetError, ValueError):
    """A model file is corrupt or was written by an incompatible version."""


class RatingError(DaniNetError, ValueError):
    """A rating study cannot be built or scored: the message names the file or option."""
