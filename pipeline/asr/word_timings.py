"""Word timings fitted to the speech the VAD heard.

Whisper's cross-attention alignment (dynamic time warping over its alignment heads) puts words
in order and roughly in time, but it has no notion of silence. Its path starts at the first
frame, so an utterance's first word starts at 0 however much silence comes before it; and a
pause is given to the word after it, which then starts early (on the real clips of
`tests/data/real_speech`, "Ten" after a 0.45 s pause began 0.64 s before its speech). The VAD
knows where the pauses are to about 30 ms. So each word goes to the speech region nearest to
where it ends (the alignment's most reliable time: where the model moves on to the next
token), and each region's words are fitted inside it: the first starts where the region's
speech starts, the last ends where it ends, and the words between keep the alignment's
boundaries, clipped into the region. Words from a CTC alignment, which does know silence, go
through the same fitting; for them it mostly moves the edges.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.asr.base import TimedText

Span = tuple[float, float]
MIN_WORD_S = 0.02  # one step of Whisper's alignment: no fitted word is shorter

# Why a row with words in its text has no word timings (`words_missing`):
CANNOT_ALIGN = "backend_cannot_align"  # vllm and Canary here time no words
NOT_ALIGNED = "not_aligned"  # the backend aligns, but timed none of this text's words


def fit_to_speech(
    words: Sequence[TimedText], speech: Sequence[Span], duration: float
) -> tuple[TimedText, ...]:
    """`words` (seconds from the start of an audio of `duration`) moved into that audio's
    speech regions (same clock, in time order); without speech regions, only clipped to the
    audio. The result is in order: every word starts where or after the one before it ends."""
    if not words:
        return ()
    regions = [(max(0.0, a), min(duration, b)) for a, b in speech if min(duration, b) > max(0.0, a)]
    if not regions:
        regions, snap = [(0.0, duration)], False
    else:
        snap = True
    assigned = _regions_of(words, regions)
    fitted: list[TimedText] = []
    for region in sorted(set(assigned)):
        members = [w for w, r in zip(words, assigned) if r == region]
        fitted.extend(_fit(members, regions[region], snap))
    return tuple(fitted)


def _regions_of(words: Sequence[TimedText], regions: list[Span]) -> list[int]:
    """Each word's region: the one nearest its end, never before the previous word's."""
    assigned: list[int] = []
    for word in words:
        distances = [max(a - word.end, word.end - b, 0.0) for a, b in regions]
        nearest = int(np.argmin(distances))
        assigned.append(max(nearest, assigned[-1]) if assigned else nearest)
    return assigned


def _fit(words: list[TimedText], region: Span, snap: bool) -> list[TimedText]:
    """The words of one region inside it, each at least `MIN_WORD_S` long where the region
    has room: clipped (the first and last at its edges when `snap`); where clipping crushes a
    word, the alignment's spans stretched over the region instead; failing that, equal parts."""
    start, end = region
    spans = np.array([(w.start, w.end) for w in words], dtype=np.float64)
    clipped = np.maximum.accumulate(np.clip(spans.ravel(), start, end))
    if snap:
        clipped[0], clipped[-1] = start, end
    if _too_short(clipped, start, end, len(words)):
        first, last = spans[0, 0], spans[-1, 1]
        scale = (end - start) / (last - first) if last > first else 0.0
        clipped = np.maximum.accumulate(start + (spans.ravel() - first) * scale)
        if _too_short(clipped, start, end, len(words)):
            edges = np.linspace(start, end, len(words) + 1)
            clipped = np.column_stack([edges[:-1], edges[1:]]).ravel()
    pairs = clipped.reshape(-1, 2)
    return [TimedText(float(a), float(b), w.text) for (a, b), w in zip(pairs, words)]


def _too_short(bounds: np.ndarray, start: float, end: float, count: int) -> bool:
    """A word shorter than `MIN_WORD_S`, in a region with room for all of them at that length."""
    lengths = bounds[1::2] - bounds[0::2]
    return bool(lengths.min() < MIN_WORD_S - 1e-9) and end - start >= count * MIN_WORD_S
