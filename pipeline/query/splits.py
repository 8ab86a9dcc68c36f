"""The train/dev/test split of a curated corpus: by speaker group, deterministic, one for all exits.

A test set that shares a speaker with the train set measures memory, not skill. So recordings
that share a voice (`pipeline.speakers`: a `speaker_cluster` in both) form one `split_group`,
named by its first recording, and a recording's split depends only on that name and the
ratios. The group travels in each dataset row (`split_group`), so the training job,
`vaglio export` and `vaglio publish` agree without a split file. A row without one (a workdir
curated before speakers were found) falls back to its own recording id: one recording never
lends segments to two splits either way.
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


def split_of(recording_id: str, ratios: Mapping[str, float], group: str | None = None) -> str:
    """The split (a key of `ratios`) that `recording_id`, of speaker group `group`, belongs to.

    The first 8 bytes of the SHA-256 of the group (else the recording id) give a point in
    [0, 1); the splits take consecutive stretches of that interval in the order of `ratios`,
    each as long as its share of the total.
    """
    check_ratios(ratios)
    total = sum(ratios.values())
    digest = hashlib.sha256((group or recording_id).encode("utf-8")).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * total
    bound = 0.0
    for split, share in ratios.items():
        bound += share
        if point < bound:
            return split
    return next(reversed(list(ratios)))  # rounding at the very top of the interval
