"""The train/dev/test split of a curated corpus: by recording, deterministic, shared by every exit.

A recording's split depends only on its id and the ratios, so the training job, `vaglio export`
and `vaglio publish` agree without a split file, and no recording lends segments to two splits
(a test set that shares a speaker session with the train set measures memory, not skill).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

DEFAULT_RATIOS: Mapping[str, float] = {"train": 0.8, "dev": 0.1, "test": 0.1}
SPLITS = tuple(DEFAULT_RATIOS)


def check_ratios(ratios: Mapping[str, float]) -> None:
    """Raise ValueError unless every share is a finite number of at least 0 and they add up
    to more than 0: a NaN share would put every recording in the last split."""
    shares = list(ratios.values())
    if not all(math.isfinite(s) and s >= 0 for s in shares) or sum(shares) <= 0:
        raise ValueError(f"split ratios must be finite, at least 0, with a positive sum: {ratios}")


def split_of(recording_id: str, ratios: Mapping[str, float]) -> str:
    """The split (a key of `ratios`) that `recording_id` belongs to.

    The first 8 bytes of the id's SHA-256 give a point in [0, 1); the splits take consecutive
    stretches of that interval in the order of `ratios`, each as long as its share of the total.
    """
    check_ratios(ratios)
    total = sum(ratios.values())
    digest = hashlib.sha256(recording_id.encode("utf-8")).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * total
    bound = 0.0
    for split, share in ratios.items():
        bound += share
        if point < bound:
            return split
    return next(reversed(list(ratios)))  # rounding at the very top of the interval
