"""Pass 1: the language gate, then a timed first transcript of every chunk.

The language of a recording is Whisper's language probabilities over up to `lid_windows` of
its chunks, those with the most speech, averaged with their seconds of speech as weights: a
short chunk is a poor witness (on a real English recording, a closing 1.8 s chunk heard
Japanese at 0.52 and, counted as much as 14 s of speech, failed the whole recording at 0.68,
below `min_lang_prob`). When the language model is the transcribing model, those chunks are
encoded once: their encoder output is kept while the recording's language is decided, then
decoded in it (up to `MAX_HELD_WINDOWS` at a time, so memory stays flat).

A recording whose most probable language is not one its source declares fails the gate, and
so does one the model is not sure of: its chunks are kept as rows with the reason and are not
transcribed. Where the source declares languages, sureness is measured among them (the top
language's share of the declared languages' probability, against `min_lang_prob`), and the
top language must be `min_lead` (2) times as probable as any undeclared one: a real English
recording of short chunks far apart (English 0.49, Bulgarian 0.14) passes in an English
source, a source that declares English and Italian still needs the model to tell those
apart, and German audio that Whisper base puts at English 0.43, German 0.32 fails.

The recordings that pass are decoded chunk by chunk with the language forced, with phrase
timestamps for pass 2 to cut at; a chunk whose decoder stopped while the VAD still hears
speech is decoded again from its last timestamp (`pipeline.asr.seek`), so no sentence is left
out because the model ended early.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from manifests.schemas import PASS1, TIMED_TEXT, with_versions
from pipeline.asr import require_backend
from pipeline.asr.base import EncodingBackend, Hypothesis
from pipeline.asr.seek import SeekConfig, transcribe_to_speech_end
from pipeline.asr.shared import AsrModelConfig, loaded_backend
from pipeline.audio.cut import segment_samples
from pipeline.stage import ShardContext, Stage
from pipeline.validation import Count, NonNegative, Share

LANG_UNDECLARED = "audio_lang_undeclared"
LANG_UNCERTAIN = "audio_lang_uncertain"
PASS1_MODEL = AsrModelConfig(beam_size=1, window_margin_s=2.0)
MAX_HELD_WINDOWS = 64  # encoded language windows kept at once (Whisper large: ~7 MB each)


@dataclass(frozen=True)
class Pass1Config:
    # Pass 1 needs timestamps and the language, not the best words: greedy decoding and 2 s of
    # window margin (timestamps and the seek end its windows; pass 2 keeps 6 s) cut the same
    # utterances with the same kept WER on the demo and on real speech, 15-25 % cheaper
    # (bench/README.md). The language model is the same, so its windows are encoded once.
    asr: AsrModelConfig = PASS1_MODEL
    lid: AsrModelConfig = PASS1_MODEL
    seek: SeekConfig = field(default_factory=SeekConfig)
    lid_windows: Count = 3
    min_lang_prob: Share = 0.7
    # Where the source declares languages, the declared one must also lead every undeclared
    # one this many times: German audio in an en+it source came out English 0.43, German 0.32.
    min_lead: NonNegative = 2.0


def most_speech(chunks: list[int], speech_s: list[float], count: int) -> list[int]:
    """Up to `count` of `chunks` (indices into `speech_s`), those with the most speech, in
    their original order."""
    chosen = set(sorted(chunks, key=lambda i: -speech_s[i])[:count])
    return [i for i in chunks if i in chosen]


def averaged(distributions: list[dict[str, float]], weights: list[float]) -> dict[str, float]:
    """The weighted mean of `distributions` (equal weights where all are zero)."""
    if sum(weights) <= 0:
        weights = [1.0] * len(distributions)
    shares = [weight / sum(weights) for weight in weights]
    total: dict[str, float] = defaultdict(float)
    for distribution, share in zip(distributions, shares):
        for lang, p in distribution.items():
            total[lang] += p * share
    return dict(total)


def most_probable(distribution: dict[str, float]) -> tuple[str, float]:
    return max(distribution.items(), key=lambda kv: kv[1])


def held_groups(windows: dict[str, list[int]], most: int) -> list[list[str]]:
    """Recordings in groups of at most `most` language windows (a larger one alone)."""
    groups: list[list[str]] = [[]]
    held = 0
    for rid, rows in windows.items():
        if groups[-1] and held + len(rows) > most:
            groups.append([])
            held = 0
        groups[-1].append(rid)
        held += len(rows)
    return groups


def gate_reason(
    distribution: dict[str, float], declared: list[str], min_prob: float, min_lead: float
) -> str | None:
    """Why a recording with this language distribution fails the language gate, or None when
    it passes. Where languages are declared: `min_prob` of their probability, and `min_lead`
    times any undeclared language's; where none are, `min_prob` of all."""
    lang, prob = most_probable(distribution)
    if declared and lang not in declared:
        return LANG_UNDECLARED
    if not declared:
        return LANG_UNCERTAIN if prob < min_prob else None
    among = sum(distribution.get(d, 0.0) for d in declared)
    rival = max((p for other, p in distribution.items() if other not in declared), default=0.0)
    if prob < min_prob * among or prob < min_lead * rival:
        return LANG_UNCERTAIN
    return None


def _timed(items, offset: float) -> list[dict]:
    """Backend times (from the chunk's start) as recording times, in the row layout."""
    return [
        {"start": round(offset + t.start, 3), "end": round(offset + t.end, 3), "text": t.text}
        for t in items
    ]


class Pass1(Stage):
    name = "pass1"
    # 4: language ID on the chunks with the most speech, weighted by it; sure among the declared
    # languages and leading the undeclared ones
    version = "4"
    inputs = ("segment", "standardise")
    max_parallel_shards = 1

    def __init__(self, config: Pass1Config):
        super().__init__(config)
        require_backend(config.asr.backend)
        require_backend(config.lid.backend)

    @property
    def version_tag(self) -> str:
        return f"{self.version}:{self.config.asr.tag}:lid={self.config.lid.tag}"

    def run(self, context: ShardContext) -> pa.Table:
        segments = context.read("segment")
        chunks = segment_samples(context, segments)
        recording_ids = segments["recording_id"].to_pylist()
        speech_s = [s or 0.0 for s in segments["speech_duration"].to_pylist()]
        distributions, first = self._languages(recording_ids, chunks, speech_s)
        languages = {rid: most_probable(d) for rid, d in distributions.items()}
        declared = dict(zip(recording_ids, segments["declared_languages"].to_pylist()))
        gate = {
            rid: gate_reason(
                d, declared[rid] or [], self.config.min_lang_prob, self.config.min_lead
            )
            for rid, d in distributions.items()
        }
        reasons = [gate[rid] for rid in recording_ids]
        passed = [i for i, reason in enumerate(reasons) if reason is None]
        offsets = segments["offset"].to_pylist()
        speech = [
            [(r["start"] - offset, r["end"] - offset) for r in regions]
            for regions, offset in zip(segments["speech_regions"].to_pylist(), offsets)
        ]
        hypotheses: list[Hypothesis | None] = [None] * len(chunks)
        if passed:
            decoded = transcribe_to_speech_end(
                loaded_backend(self.config.asr),
                [chunks[i] for i in passed],
                [languages[recording_ids[i]][0] for i in passed],
                [speech[i] for i in passed],
                self.config.seek,
                first=[first.get(i) for i in passed],
            )
            for i, hypothesis in zip(passed, decoded):
                hypotheses[i] = hypothesis
        timed = pa.list_(TIMED_TEXT)
        added = {
            "lang": pa.array([languages[r][0] for r in recording_ids], pa.string()),
            "lang_prob": pa.array([languages[r][1] for r in recording_ids], pa.float32()),
            "gate_reason": pa.array(reasons, pa.string()),
            "text": pa.array([h and h.text for h in hypotheses], pa.string()),
            "avg_logprob": pa.array([h and h.avg_logprob for h in hypotheses], pa.float32()),
            "no_speech_prob": pa.array([h and h.no_speech_prob for h in hypotheses], pa.float32()),
            "phrases": pa.array(
                [_timed(h.segments, o) if h else [] for h, o in zip(hypotheses, offsets)], timed
            ),
            "words": pa.array(
                [_timed(h.words, o) if h else [] for h, o in zip(hypotheses, offsets)], timed
            ),
        }
        table = pa.table([*segments.columns, *added.values()], schema=PASS1)
        return with_versions(table, self.name, self.version_tag)

    def _languages(
        self, recording_ids: list[str], chunks: list[np.ndarray], speech_s: list[float]
    ) -> tuple[dict[str, dict[str, float]], dict[int, Hypothesis]]:
        """Each recording's language distribution; and the first-round hypotheses of the
        chunks whose encoding language ID shared with transcription (by chunk index)."""
        by_recording: dict[str, list[int]] = defaultdict(list)
        for index, rid in enumerate(recording_ids):
            by_recording[rid].append(index)
        windows = {
            rid: most_speech(rows, speech_s, self.config.lid_windows)
            for rid, rows in by_recording.items()
        }
        lid, asr = loaded_backend(self.config.lid), loaded_backend(self.config.asr)
        if lid is asr and isinstance(asr, EncodingBackend):
            return self._languages_decoding(asr, windows, recording_ids, chunks, speech_s)
        flat = [i for rows in windows.values() for i in rows]
        probabilities = dict(zip(flat, lid.language_probabilities([chunks[i] for i in flat])))
        languages = {
            rid: averaged([probabilities[i] for i in rows], [speech_s[i] for i in rows])
            for rid, rows in windows.items()
        }
        return languages, {}

    def _languages_decoding(
        self,
        backend: EncodingBackend,
        windows: dict[str, list[int]],
        recording_ids: list[str],
        chunks: list[np.ndarray],
        speech_s: list[float],
    ) -> tuple[dict[str, dict[str, float]], dict[int, Hypothesis]]:
        """Language ID on the windows' encodings, then their first decoding round on the same
        encodings. A window of a recording that fails the gate is decoded with its batch and
        its text is not used."""
        languages: dict[str, dict[str, float]] = {}
        first: dict[int, Hypothesis] = {}
        for group in held_groups(windows, MAX_HELD_WINDOWS):
            flat = [i for rid in group for i in windows[rid]]
            encoded = list(backend.encode([chunks[i] for i in flat]))
            distributions = {}
            for batch in encoded:
                distributions.update(zip((flat[j] for j in batch.indices), backend.detect(batch)))
            for rid in group:
                chosen = windows[rid]
                languages[rid] = averaged(
                    [distributions[i] for i in chosen], [speech_s[i] for i in chosen]
                )
            for batch in encoded:
                rows = [flat[j] for j in batch.indices]
                batch_languages = [most_probable(languages[recording_ids[i]])[0] for i in rows]
                first.update(zip(rows, backend.decode(batch, batch_languages, timestamps=True)))
        return languages, first
