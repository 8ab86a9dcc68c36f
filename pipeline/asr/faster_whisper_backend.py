"""Whisper through faster-whisper (CTranslate2): int8 on the CPU, float16 on a GPU.

Pieces of audio from many recordings go through the encoder and decoder together, each with
its own language token in the prompt, so a batch never waits for one file. While CTranslate2
decodes one batch (it releases the GIL), a helper thread computes the next batch's features.

Whisper pads every input to 30 s, so a 4 s utterance costs as much encoder time as 30 s of
speech. Here a batch is padded to its longest audio plus `window_margin_s` (at least 8 s, at
most 30 s): the encoder's cost follows the audio. With less than ~6 s of padding Whisper
starts to loop; with 6 s the word error rate on the bench's utterances matched full padding
(bench/asr_vs_plain.py prints both). A margin of 30 s restores Whisper's own padding.
Language ID always sees full 30 s windows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pipeline.asr.base import Hypothesis
from pipeline.asr.offline_models import resolve_whisper_model
from pipeline.asr.whisper_tokens import timed_phrases

FRAMES_PER_S = 100  # 10 ms mel frames
WINDOW_S = 30.0  # Whisper's input window: audio is padded (or cut) to it
MIN_WINDOW_S = 8.0
WINDOW_STEP_S = 2.0  # few distinct input shapes keep CTranslate2's cached buffers few


class FasterWhisperBackend:
    name = "faster-whisper"

    def __init__(
        self,
        model: str,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
        batch_size: int = 8,
        beam_size: int = 5,
        window_margin_s: float = 6.0,
    ):
        import ctranslate2
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        ctranslate2.set_random_seed(0)
        self.model_id = model
        self.model = WhisperModel(
            resolve_whisper_model(model),
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
        )
        self.tokenizer = Tokenizer(
            self.model.hf_tokenizer, multilingual=True, task="transcribe", language="en"
        )
        self.batch_size = batch_size
        self.beam_size = beam_size
        self.window_margin_s = window_margin_s
        self._feature_thread = ThreadPoolExecutor(1, thread_name_prefix="whisper-features")

    def _features(self, audios: list[np.ndarray], window_s: float | None) -> np.ndarray:
        """Log-mel features of a batch, padded to `window_s`, or fitted to the batch if None."""
        from faster_whisper.audio import pad_or_trim

        if window_s is None:
            longest = max(len(a) for a in audios) / self.model.feature_extractor.sampling_rate
            fitted = math.ceil((longest + self.window_margin_s) / WINDOW_STEP_S) * WINDOW_STEP_S
            window_s = min(WINDOW_S, max(MIN_WINDOW_S, fitted))
        frames = round(window_s * FRAMES_PER_S)
        return np.stack([pad_or_trim(self.model.feature_extractor(a), frames) for a in audios])

    def _prefetched(
        self, audios: list[np.ndarray], batches: list[list[int]], window_s: float | None = None
    ) -> Iterator:
        """Features of each batch, the next one computed while the caller decodes this one."""
        pending = None
        for number, batch in enumerate(batches):
            if pending is None:
                first = [audios[i] for i in batch]
                pending = self._feature_thread.submit(self._features, first, window_s)
            features = pending.result()
            if number + 1 < len(batches):
                upcoming = [audios[i] for i in batches[number + 1]]
                pending = self._feature_thread.submit(self._features, upcoming, window_s)
            yield features

    def _batches(self, audios: list[np.ndarray]) -> list[list[int]]:
        """Indices in batches of similar lengths: fewer padded decoding steps in each."""
        order = sorted(range(len(audios)), key=lambda i: len(audios[i]))
        return [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]

    def language_probabilities(self, windows: list[np.ndarray]) -> list[dict[str, float]]:
        batches = self._batches(windows)
        results: dict[int, dict[str, float]] = {}
        for batch, features in zip(batches, self._prefetched(windows, batches, WINDOW_S)):
            rankings = self.model.model.detect_language(self.model.encode(features))
            for index, ranking in zip(batch, rankings):
                results[index] = {token[2:-2]: prob for token, prob in ranking}
        return [results[i] for i in range(len(windows))]

    def _prompt(self, language: str, timestamps: bool) -> list[int]:
        tokenizer = self.tokenizer
        language_token = tokenizer.tokenizer.token_to_id(f"<|{language}|>")
        if language_token is None:
            raise ValueError(f"Whisper does not know the language {language!r}")
        prompt = [tokenizer.sot, language_token, tokenizer.transcribe]
        return prompt if timestamps else [*prompt, tokenizer.no_timestamps]

    def transcribe(
        self, audios: list[np.ndarray], languages: list[str], *, timestamps: bool = False
    ) -> list[Hypothesis]:
        from faster_whisper.transcribe import get_suppressed_tokens

        suppressed = get_suppressed_tokens(self.tokenizer, [-1])
        batches = self._batches(audios)
        hypotheses: dict[int, Hypothesis] = {}
        for batch, features in zip(batches, self._prefetched(audios, batches)):
            results = self.model.model.generate(
                self.model.encode(features),
                [self._prompt(languages[i], timestamps) for i in batch],
                beam_size=self.beam_size,
                max_length=self.model.max_length,
                suppress_blank=True,
                suppress_tokens=suppressed,
                return_scores=True,
                return_no_speech_prob=True,
            )
            for index, result in zip(batch, results):
                duration = len(audios[index]) / self.model.feature_extractor.sampling_rate
                hypotheses[index] = self._hypothesis(result, timestamps, duration)
        return [hypotheses[i] for i in range(len(audios))]

    def _hypothesis(self, result, timestamps: bool, duration: float) -> Hypothesis:
        tokenizer = self.tokenizer
        sequence = [
            t
            for t in result.sequences_ids[0]
            if t < tokenizer.eot or t >= tokenizer.timestamp_begin
        ]
        text_tokens = [t for t in sequence if t < tokenizer.eot]
        length = len(result.sequences_ids[0])
        phrases = (
            timed_phrases(sequence, tokenizer.timestamp_begin, tokenizer.decode, duration)
            if timestamps
            else ()
        )
        return Hypothesis(
            text=tokenizer.decode(text_tokens).strip(),
            avg_logprob=float(result.scores[0] * length / (length + 1)),
            no_speech_prob=float(result.no_speech_prob),
            segments=phrases,
        )
