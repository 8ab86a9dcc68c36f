"""The interface every ASR backend implements: language ID on windows, batched transcription.

Audio is float32 mono at 16 kHz. Times in a hypothesis are seconds from the start of the
audio that was passed in; stages add the offset of that audio within its recording.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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


class AsrBackend(Protocol):
    """A loaded ASR model; one instance per worker, reused for every shard."""

    name: str
    model_id: str

    def language_probabilities(self, windows: list[np.ndarray]) -> list[dict[str, float]]:
        """For each window (at most 30 s), the probability of every language the model
        knows. Backends without language ID raise NotImplementedError."""
        ...

    def transcribe(
        self, audios: list[np.ndarray], languages: list[str], *, timestamps: bool = False
    ) -> list[Hypothesis]:
        """One hypothesis per audio, decoding each in the given (forced) language, batched
        across audios. With `timestamps`, segments (and words where possible) are timed."""
        ...
