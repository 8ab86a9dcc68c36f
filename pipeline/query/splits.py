"""Train / dev / test membership by recording: every segment of one recording lands in the
same split, so a model is never tested on the voice and room it was trained on.

The split is a pure function of the recording id (a hash, not a random draw), so it is the
same on every machine, in every run, and for a corpus that grows: adding recordings never
moves an old one to another split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def split_of(recording_id: str, ratios: Mapping[str, float]) -> str:
    """The split (a key of `ratios`, taken in order) that `recording_id` belongs to."""
    digest = hashlib.sha256(recording_id.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    total = 0.0
    for name, ratio in ratios.items():
        total += ratio
        if position < total:
            return name
    return next(name for name, ratio in reversed(ratios.items()) if ratio > 0)
