"""Cut a recording into utterances from its pass-1 phrases and its VAD speech regions.

Whisper's phrases usually end at sentence ends. Consecutive sentences are joined into one
utterance while it stays within `join_s` and no pause between them is longer than
`join_pause_s`: a few sentences give pass 2's decoder context (the words of a lone 3 s sentence
are guessed from 3 s of sound), make better training rows than fragments, and waste less of
Whisper's window on padding. Its timestamps are only roughly right, so each cut between two
utterances is moved into the nearest pause that the VAD heard, and only the utterance's own
audio goes to pass 2. A phrase run that never pauses or ends a sentence is cut before it grows
past `max_s`. Speech that pass 1 left without words (the model skipped it, or
heard nothing in the whole chunk) is cut into utterances of its own, so pass 2 hears it too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from itertools import pairwise

from pipeline.asr.base import TimedText
from pipeline.validation import PositiveSeconds, Seconds

Span = tuple[float, float]

_SENTENCE_END = re.compile(r"[.!?…。！？؟]['\"»”’)\]]*$")


@dataclass(frozen=True)
class UtteranceConfig:
    min_s: Seconds = 0.1
    max_s: PositiveSeconds = 30.0  # Whisper hears at most 30 s; NeMo models take 40
    pause_s: Seconds = 0.5  # a pause this long may end an utterance (as a sentence end may)
    join_s: Seconds = 20.0  # sentences join while the utterance stays this short (0: one each)
    join_pause_s: Seconds = 2.0  # a pause at least this long always ends an utterance
    snap_s: Seconds = 0.6  # how far a cut may move to land in a pause
    pad_s: Seconds = 0.15  # silence kept around each utterance, where there is room

    def __post_init__(self) -> None:
        if self.min_s >= self.max_s:
            raise ValueError(f"min_s ({self.min_s}) must be below max_s ({self.max_s})")


def pauses(speech: list[Span]) -> list[Span]:
    """The silences between consecutive speech regions."""
    return [(a_end, b_start) for (_, a_end), (b_start, _) in pairwise(speech)]


def _nearest_pause(time: float, silences: list[Span], within: float) -> Span | None:
    """The pause that contains `time`, else the closest one within `within` seconds."""
    best, best_distance = None, within
    for start, end in silences:
        distance = max(start - time, time - end, 0.0)
        if distance <= best_distance:
            best, best_distance = (start, end), distance
    return best


def _group(phrases: list[TimedText], silences: list[Span], config: UtteranceConfig):
    """Phrases in utterance groups: a group goes on through a sentence end or pause while it
    stays within `join_s`, and through anything else while it stays within `max_s`."""
    groups: list[list[TimedText]] = []
    for phrase in phrases:
        if groups:
            current, last = groups[-1], groups[-1][-1]
            pause = _nearest_pause((last.end + phrase.start) / 2, silences, config.snap_s)
            silence = max(phrase.start - last.end, pause[1] - pause[0] if pause else 0.0)
            ends = _SENTENCE_END.search(last.text) is not None or silence >= config.pause_s
            length = phrase.end - current[0].start
            joins = silence < config.join_pause_s and length <= config.join_s
            if (joins or not ends) and length <= config.max_s:
                current.append(phrase)
                continue
        groups.append([phrase])
    return groups


def cut_utterances(
    phrases: list[TimedText], speech: list[Span], duration: float, config: UtteranceConfig
) -> list[TimedText]:
    """Utterances (start, end, pass-1 text) in time order, from one recording's phrases (in
    time order, seconds from the recording's start) and its VAD speech regions.

    An utterance starts in the pause nearest its first phrase's start and ends in the pause
    nearest its last phrase's end; an edge that still lies inside speech moves out to that
    speech's end, so no word is cut. Speech that no utterance covers then (pass 1 did not
    transcribe it) becomes utterances of its own with empty pass-1 text: every second of
    speech the VAD heard lies inside an utterance.
    """
    silences = pauses(speech)
    if speech:  # the recording's edges are pauses too
        silences = [(0.0, speech[0][0]), *silences, (speech[-1][1], duration)]
    groups = _group(phrases, silences, config)
    starts, ends = [], []
    for group in groups:
        before = _nearest_pause(group[0].start, silences, config.snap_s)
        after = _nearest_pause(group[-1].end, silences, config.snap_s)
        starts.append(group[0].start if before is None else _late_in(before, config.pad_s))
        ends.append(group[-1].end if after is None else _early_in(after, config.pad_s))
    for left in range(len(groups) - 1):
        if ends[left] > starts[left + 1]:  # no pause found between them: cut once
            ends[left] = starts[left + 1] = (ends[left] + starts[left + 1]) / 2
    spans = _whole_words(list(zip(starts, ends)), speech, config)
    found = [TimedText(a, b, " ".join(p.text for p in g)) for (a, b), g in zip(spans, groups)]
    untranscribed = _uncovered_runs([(u.start, u.end) for u in found], speech, config)
    everything = sorted(
        found + [TimedText(a, b, "") for a, b in untranscribed], key=lambda u: u.start
    )
    return [
        TimedText(round(max(0.0, u.start), 3), round(min(duration, u.end), 3), u.text)
        for u in everything
    ]


def _whole_words(spans: list[Span], speech: list[Span], config: UtteranceConfig) -> list[Span]:
    """Move an utterance edge that lies inside speech out to that speech's edge (plus the
    pad), as far as the neighbouring utterance and `max_s` allow."""
    widened: list[Span] = []
    for index, (start, end) in enumerate(spans):
        floor = widened[-1][1] if widened else 0.0
        ceiling = spans[index + 1][0] if index + 1 < len(spans) else float("inf")
        for a, b in speech:
            if a < end < b:
                end = max(end, min(b + config.pad_s, ceiling, start + config.max_s))
            if a < start < b:
                start = min(start, max(a - config.pad_s, floor, end - config.max_s))
        widened.append((start, end))
    return widened


MIN_PIECE_S = 0.02  # less uncovered speech than this is rounding, not a word


def _uncovered_runs(spans: list[Span], speech: list[Span], config: UtteranceConfig):
    """Speech outside every span, as utterance spans: pieces closer than `pause_s` join (up
    to `max_s`, never across a span), with `pad_s` around them where there is room."""
    pieces: list[Span] = []
    for a, b in speech:
        for start, end in spans:
            if start <= a < end:
                a = end
            if a < start < b:
                pieces.append((a, start))
                a = min(b, end)
        if b - a >= MIN_PIECE_S:
            pieces.append((a, b))
    pieces = [p for p in pieces if p[1] - p[0] >= MIN_PIECE_S]
    runs: list[Span] = []
    for a, b in pieces:
        if runs:
            last_start, last_end = runs[-1]
            between = any(last_end <= s < a for s, _ in spans)
            if not between and a - last_end < config.pause_s and b - last_start <= config.max_s:
                runs[-1] = (last_start, b)
                continue
        runs.extend(_split(a, b, config.max_s))
    taken = sorted(spans + runs)
    padded: list[Span] = []
    for a, b in runs:
        floor = max([e for _, e in taken + padded if e <= a] + [a - config.pad_s])
        ceiling = min([s for s, _ in taken if s >= b] + [b + config.pad_s])
        padded.append((floor, ceiling))
    return padded


def _split(start: float, end: float, max_s: float) -> list[Span]:
    """`start`-`end` in equal parts of at most `max_s`."""
    parts = max(1, math.ceil((end - start) / max_s))
    step = (end - start) / parts
    return [(start + i * step, start + (i + 1) * step) for i in range(parts)]


def _late_in(pause: Span, pad: float) -> float:
    """Where an utterance starts in a pause: `pad` before the speech, in its second half."""
    return max(pause[1] - pad, (pause[0] + pause[1]) / 2)


def _early_in(pause: Span, pad: float) -> float:
    """Where an utterance ends in a pause: `pad` after the speech, in its first half."""
    return min(pause[0] + pad, (pause[0] + pause[1]) / 2)
