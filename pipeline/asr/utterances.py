"""Cut a recording into utterances from its pass-1 phrases and its VAD speech regions.

Whisper's phrases usually end at sentence ends; its timestamps are only roughly right, so each
cut between two utterances is moved into the nearest pause that the VAD heard, and only the
utterance's own audio goes to pass 2. A phrase run that never pauses or ends a sentence is cut
before it grows past `max_s`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

from pipeline.asr.base import TimedText

Span = tuple[float, float]

_SENTENCE_END = re.compile(r"[.!?…。！？؟]['\"»”’)\]]*$")


@dataclass(frozen=True)
class UtteranceConfig:
    min_s: float = 0.1
    max_s: float = 30.0  # Whisper hears at most 30 s; NeMo models take 40
    pause_s: float = 0.5  # a pause at least this long ends an utterance
    snap_s: float = 0.6  # how far a cut may move to land in a pause
    pad_s: float = 0.15  # silence kept around each utterance, where there is room


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
    groups: list[list[TimedText]] = []
    for phrase in phrases:
        if groups:
            current, last = groups[-1], groups[-1][-1]
            pause = _nearest_pause((last.end + phrase.start) / 2, silences, config.snap_s)
            ends = (
                _SENTENCE_END.search(last.text) is not None
                or phrase.start - last.end >= config.pause_s
                or (pause is not None and pause[1] - pause[0] >= config.pause_s)
            )
            if not ends and phrase.end - current[0].start <= config.max_s:
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
    nearest its last phrase's end; speech between two utterances that pass 1 did not
    transcribe belongs to neither.
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
    return [
        TimedText(round(max(0.0, a), 3), round(min(duration, b), 3), " ".join(p.text for p in g))
        for a, b, g in zip(starts, ends, groups)
    ]


def _late_in(pause: Span, pad: float) -> float:
    """Where an utterance starts in a pause: `pad` before the speech, in its second half."""
    return max(pause[1] - pad, (pause[0] + pause[1]) / 2)


def _early_in(pause: Span, pad: float) -> float:
    """Where an utterance ends in a pause: `pad` after the speech, in its first half."""
    return min(pause[0] + pad, (pause[0] + pause[1]) / 2)
