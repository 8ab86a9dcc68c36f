"""Whisper through faster-whisper (CTranslate2): int8 on the CPU, float16 on a GPU.

Chunks from many recordings go through the encoder and decoder together, each with its own
language token in the prompt, so a batch never waits for one file.
"""

from __future__ import annotations

import numpy as np

from pipeline.asr.base import Hypothesis
from pipeline.asr.offline_models import resolve_whisper_model

CHUNK_FRAMES = 3000  # 30 s of 10 ms mel frames: Whisper's fixed input


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

    def _encode(self, audios: list[np.ndarray]):
        from faster_whisper.audio import pad_or_trim

        features = [pad_or_trim(self.model.feature_extractor(a), CHUNK_FRAMES) for a in audios]
        return self.model.encode(np.stack(features))

    def language_probabilities(self, windows: list[np.ndarray]) -> list[dict[str, float]]:
        results: list[dict[str, float]] = []
        for start in range(0, len(windows), self.batch_size):
            encoded = self._encode(windows[start : start + self.batch_size])
            for ranking in self.model.model.detect_language(encoded):
                results.append({token[2:-2]: prob for token, prob in ranking})
        return results

    def _prompt(self, language: str) -> list[int]:
        tokenizer = self.tokenizer
        language_token = tokenizer.tokenizer.token_to_id(f"<|{language}|>")
        if language_token is None:
            raise ValueError(f"Whisper does not know the language {language!r}")
        return [tokenizer.sot, language_token, tokenizer.transcribe, tokenizer.no_timestamps]

    def transcribe(self, audios: list[np.ndarray], languages: list[str]) -> list[Hypothesis]:
        from faster_whisper.transcribe import get_suppressed_tokens

        suppressed = get_suppressed_tokens(self.tokenizer, [-1])
        # Similar lengths decode together: fewer padded steps in each batch.
        order = sorted(range(len(audios)), key=lambda i: len(audios[i]))
        hypotheses: dict[int, Hypothesis] = {}
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            results = self.model.model.generate(
                self._encode([audios[i] for i in batch]),
                [self._prompt(languages[i]) for i in batch],
                beam_size=self.beam_size,
                max_length=self.model.max_length,
                suppress_blank=True,
                suppress_tokens=suppressed,
                return_scores=True,
                return_no_speech_prob=True,
            )
            for index, result in zip(batch, results):
                tokens = [t for t in result.sequences_ids[0] if t < self.tokenizer.eot]
                length = len(result.sequences_ids[0])
                hypotheses[index] = Hypothesis(
                    text=self.tokenizer.decode(tokens).strip(),
                    avg_logprob=float(result.scores[0] * length / (length + 1)),
                    no_speech_prob=float(result.no_speech_prob),
                )
        return [hypotheses[i] for i in range(len(audios))]
