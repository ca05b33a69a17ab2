"""The paper's blinded expert rating as a tool: ``daninet-rating build`` makes a static,
blinded study folder from the simulation derivatives of several models; raters answer it
in a browser; ``daninet-rating score`` unblinds and summarises their answers.
See docs/rating.md.
"""

from ..errors import RatingError
from .build import build_study
from .score import fleiss_kappa, score_study
from .trials import find_trials

__all__ = ["RatingError", "build_study", "find_trials", "fleiss_kappa", "score_study"]
