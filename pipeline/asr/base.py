"""The interface every ASR backend implements: language ID on windows, batched transcription.

Audio is float32 mono at 16 kHz. Times in a hypothesis are seconds from the start of the
audio that was passed in; stages add the offset of that audio within its recording.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class TimedText:
    """A stretch of a transcript with its time span: a segment (phrase) or a word."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Hypothesis:
    text: str
    avg_logprob: float | None = None  # None where the backend has no such score
    no_speech_prob: float | None = None
    segments: tuple[TimedText, ...] = ()  # filled when timestamps are asked for
    words: tuple[TimedText, ...] = ()  # filled where the backend can align words
    words_missing: str | None = None  # why words were asked for and not timed (word_timings.py)


class AsrBackend(Protocol):
    """A loaded ASR model; one instance per worker, reused for every shard."""

    name: str
    model_id: str

    def language_probabilities(self, windows: list[np.ndarray]) -> list[dict[str, float]]:
        """For each window (at most 30 s), the probability of every language the model
        knows. Backends without language ID raise NotImplementedError."""
        ...

    def transcribe(
        self,
        audios: list[np.ndarray],
        languages: list[str],
        *,
        timestamps: bool = False,
        word_timings: bool = False,
    ) -> list[Hypothesis]:
        """One hypothesis per audio, decoding each in the given (forced) language, batched
        across audios. With `timestamps`, segments (and words where possible) are timed.
        With `word_timings`, the words of each text are aligned to its audio without changing
        the text; a backend that cannot align says why in `words_missing`."""
        ...


@dataclass(frozen=True)
class Encoded:
    """One batch of audio through a model's encoder, kept so that language ID and decoding
    can both read it."""

    indices: tuple[int, ...]  # positions, in the list given to `encode`, of this batch's audios
    output: Any  # the encoder's output for the batch, in the backend's own type
    durations: tuple[float, ...]  # seconds of each audio


@runtime_checkable
class EncodingBackend(AsrBackend, Protocol):
    """A backend whose encoder output can be kept between language ID and decoding, so that
    audio whose language must be known before it is decoded is encoded only once."""

    def encode(self, audios: list[np.ndarray]) -> Iterator[Encoded]: ...

    def detect(self, encoded: Encoded) -> list[dict[str, float]]:
        """Each audio's probability of every language the model knows."""
        ...

    def decode(
        self,
        encoded: Encoded,
        languages: list[str],
        *,
        timestamps: bool = False,
        word_timings: bool = False,
    ) -> list[Hypothesis]:
        """One hypothesis per audio of the batch, in its forced language."""
        ...
