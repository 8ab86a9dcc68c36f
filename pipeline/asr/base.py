"""The interface every ASR backend implements: language ID on windows, batched transcription."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Hypothesis:
    text: str
    avg_logprob: float
    no_speech_prob: float


class AsrBackend(Protocol):
    """A loaded ASR model. Audio is float32 mono at 16 kHz, each piece at most 30 s."""

    name: str
    model_id: str

    def language_probabilities(self, windows: list[np.ndarray]) -> list[dict[str, float]]:
        """For each window, the probability of every language the model knows."""
        ...

    def transcribe(self, audios: list[np.ndarray], languages: list[str]) -> list[Hypothesis]:
        """One hypothesis per audio, decoding each in the given (forced) language."""
        ...
