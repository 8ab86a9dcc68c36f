"""Who is the same speaker: within a recording (average linkage) and across a corpus (single
linkage), both by cosine similarity of L2-normed voice embeddings against a stated threshold.

Within a recording, segments are joined while the two most similar groups are, on average over
their pairs, at least `threshold` alike: average linkage does not chain a few in-between
segments into one speaker, and it needs no number of speakers in advance. Short segments
carry noisy embeddings, so the groups are formed from the segments with enough speech and the
others join the group they are most alike.

Across the corpus, each recording's speakers (the normed mean of their segments) are joined
whenever two are at least `threshold` alike, transitively. Chaining is the point here: the
clusters decide splits, and a speaker split across two clusters could land in two splits,
while two speakers joined only make one split group larger. The similarities are computed a
block of rows at a time, so memory grows with the number of speakers, not its square.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_BLOCK_CELLS = 1 << 24  # similarities computed at once: 64 MB of float32


@dataclass(frozen=True)
class RecordingSpeakers:
    """The speakers of one recording: a label per segment (0, 1, … in order of first
    appearance) and the margins of the decision."""

    labels: np.ndarray
    loosest_merge: float | None  # the least alike pair of groups that were joined
    closest_apart: float | None  # the most alike pair of groups left apart

    @property
    def count(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0


def average_linkage(embeddings: np.ndarray, threshold: float) -> RecordingSpeakers:
    """Group rows of `embeddings` (L2-normed) bottom-up by average cosine similarity."""
    count = len(embeddings)
    similarity = (embeddings @ embeddings.T).astype(np.float64)
    np.fill_diagonal(similarity, -np.inf)
    sizes = np.ones(count)
    owner = np.arange(count)
    loosest = None
    while count > 1:
        i, j = np.unravel_index(np.argmax(similarity), similarity.shape)
        best = float(similarity[i, j])
        if best < threshold:
            break
        loosest = best if loosest is None else min(loosest, best)
        joined = (sizes[i] * similarity[i] + sizes[j] * similarity[j]) / (sizes[i] + sizes[j])
        similarity[i, :] = similarity[:, i] = joined
        similarity[j, :] = similarity[:, j] = -np.inf
        similarity[i, i] = -np.inf
        sizes[i] += sizes[j]
        owner[owner == j] = i
        count -= 1
    remaining = float(similarity.max()) if count > 1 else None
    return RecordingSpeakers(first_appearance(owner), loosest, remaining)


def first_appearance(owner: np.ndarray) -> np.ndarray:
    """Relabel groups 0, 1, … in the order their first member appears."""
    _, first, inverse = np.unique(owner, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse].astype(np.int32)


def normed_means(embeddings: np.ndarray, labels: np.ndarray, groups: int) -> np.ndarray:
    """(groups, dim) L2-normed mean embedding of each label."""
    sums = np.zeros((groups, embeddings.shape[1]))
    np.add.at(sums, labels, embeddings)
    return sums / np.linalg.norm(sums, axis=1, keepdims=True)


def speakers_of_recording(
    embeddings: np.ndarray, speech_s: np.ndarray, threshold: float, min_speech_s: float, most: int
) -> RecordingSpeakers:
    """Speakers among one recording's segments: grouped from (at most `most` of) the segments
    with at least `min_speech_s` of speech, the longest first; every other segment joins the
    group whose mean it is most alike. With no such segment, every segment takes part."""
    if not len(embeddings):
        return RecordingSpeakers(np.zeros(0, np.int32), None, None)
    reliable = np.flatnonzero(speech_s >= min_speech_s)
    if not len(reliable):
        reliable = np.arange(len(embeddings))
    chosen = np.sort(reliable[np.argsort(-speech_s[reliable], kind="stable")[:most]])
    grouped = average_linkage(embeddings[chosen], threshold)
    means = normed_means(embeddings[chosen], grouped.labels, grouped.count)
    labels = np.argmax(embeddings @ means.T, axis=1).astype(np.int32)
    labels[chosen] = grouped.labels
    relabelled = first_appearance(labels)
    return RecordingSpeakers(relabelled, grouped.loosest_merge, grouped.closest_apart)


def single_linkage(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """Component of each row of `vectors` (L2-normed) in the graph that joins two rows at least
    `threshold` alike; a component is named by its first row."""
    count = len(vectors)
    parent = np.arange(count)
    block = max(1, _BLOCK_CELLS // max(1, count))
    for start in range(0, count, block):
        similarity = vectors[start : start + block] @ vectors.T
        rows, columns = np.nonzero(similarity >= threshold)
        rows += start
        keep = columns > rows
        _join(parent, rows[keep], columns[keep])
    return _roots(parent)


def components(count: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component of each of `count` items joined by the pairs (a[k], b[k]), named by its
    smallest member."""
    parent = np.arange(count)
    _join(parent, a, b)
    return parent


def _roots(parent: np.ndarray) -> np.ndarray:
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return parent
        parent[:] = grand


def _join(parent: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """Union the pairs (a, b) in `parent` (every component points at its smallest row), all
    pairs at once: hook the larger root under the smaller, flatten, repeat until joined."""
    while len(a):
        _roots(parent)
        root_a, root_b = parent[a], parent[b]
        apart = root_a != root_b
        a, b, root_a, root_b = a[apart], b[apart], root_a[apart], root_b[apart]
        np.minimum.at(parent, np.maximum(root_a, root_b), np.minimum(root_a, root_b))
    _roots(parent)
