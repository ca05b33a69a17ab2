"""The per-rater order of trials and candidates, shared by the page (JavaScript) and
:func:`~daninet_pipeline.rating.score.score_study` (Python).

The page shows each rater the trials and, within a trial, the candidates in an order
drawn from a PRNG seeded by the study ID, the rater ID and the trial ID, so two raters see
the same trial's candidates under different letters, and nothing about the order needs
to be stored on the rater's side. ``score`` draws the same order to unblind the letters.
The generator is FNV-1a (32 bit) of the UTF-8 seed string, then mulberry32; the shuffle is
Fisher-Yates. :data:`ORDER_JS` is the same code for the page: change both together (a
test runs both and compares).
"""

from __future__ import annotations

_MASK = 0xFFFFFFFF


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a hash of the UTF-8 bytes of ``text``.

    >>> hex(fnv1a32("a"))
    '0xe40c292c'
    """
    h = 0x811C9DC5
    for byte in text.encode("utf-8"):
        h ^= byte
        h = (h * 0x01000193) & _MASK
    return h


def _imul(a: int, b: int) -> int:
    """JavaScript's ``Math.imul`` on unsigned 32-bit operands, as an unsigned result."""
    return (a * b) & _MASK


def mulberry32(seed: int):
    """Generator of floats in [0, 1), bit for bit the page's ``mulberry32``."""
    state = seed & _MASK
    while True:
        state = (state + 0x6D2B79F5) & _MASK
        t = state
        t = _imul(t ^ (t >> 15), t | 1)
        t ^= (t + _imul(t ^ (t >> 7), t | 61)) & _MASK
        t &= _MASK
        yield ((t ^ (t >> 14)) & _MASK) / 4294967296.0


def seeded_permutation(n: int, seed_text: str) -> list[int]:
    """A permutation of ``range(n)`` drawn from ``seed_text`` (Fisher-Yates).

    >>> sorted(seeded_permutation(5, "study|rater|trial"))
    [0, 1, 2, 3, 4]
    >>> seeded_permutation(5, "x") == seeded_permutation(5, "x")
    True
    """
    order = list(range(n))
    rand = mulberry32(fnv1a32(seed_text))
    for i in range(n - 1, 0, -1):
        j = int(next(rand) * (i + 1))
        order[i], order[j] = order[j], order[i]
    return order


def candidate_order(study_id: str, rater: str, trial_id: str, n: int) -> list[int]:
    """Positions (0-based, as built) of the candidates the rater sees as A, B, C, ..."""
    return seeded_permutation(n, f"{study_id}|{rater}|{trial_id}")


def trial_order(study_id: str, rater: str, n: int) -> list[int]:
    """Indices (0-based, as built) of the trials in the order the rater sees them."""
    return seeded_permutation(n, f"{study_id}|{rater}|trials")


#: The same functions for the page (inlined into ``rater/index.html``).
ORDER_JS = r"""
function fnv1a32(text) {
  const bytes = new TextEncoder().encode(text);
  let h = 0x811c9dc5;
  for (const b of bytes) { h ^= b; h = Math.imul(h, 0x01000193) >>> 0; }
  return h >>> 0;
}
function mulberry32(seed) {
  let state = seed >>> 0;
  return function () {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1) >>> 0;
    t = (t ^ (t + Math.imul(t ^ (t >>> 7), t | 61))) >>> 0;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function seededPermutation(n, seedText) {
  const order = Array.from({length: n}, (_, i) => i);
  const rand = mulberry32(fnv1a32(seedText));
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}
function candidateOrder(studyId, rater, trialId, n) { return seededPermutation(n, studyId + "|" + rater + "|" + trialId); }
function trialOrder(studyId, rater, n) { return seededPermutation(n, studyId + "|" + rater + "|trials"); }
"""
