"""Whisper through vLLM's offline engine, on a GPU.

vLLM schedules every utterance of a call as its own request and batches them continuously,
so one `generate` call over a whole shard keeps the GPU busy. Each request carries the audio
as the encoder's multi-modal input and a decoder prompt that forces the language.

Language ID asks for one decoding step after `<|startoftranscript|>` and reads the
log-probabilities of the language tokens, renormalised over the languages returned (as
Whisper itself does, softmax over language tokens only). The engine must be allowed that
many log-probabilities (`max_logprobs`). Written against vLLM 0.9-0.20's documented Whisper
example (explicit encoder/decoder prompts); run for real only where a GPU is lent.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.asr.base import Hypothesis, MissingExtraError
from pipeline.asr.whisper_tokens import LANGUAGE_TOKEN, decoder_prompt, timed_phrases

SAMPLE_RATE = 16_000
MAX_TOKENS = 440  # Whisper's decoder holds 448 positions, the prompt included


def language_distribution(
    logprobs: dict[int, float], languages: dict[int, str]
) -> dict[str, float]:
    """Log-probabilities of one step as probabilities over the language tokens among them."""
    found = {languages[t]: lp for t, lp in logprobs.items() if t in languages}
    if not found:
        return {}
    top = max(found.values())
    weights = {lang: math.exp(lp - top) for lang, lp in found.items()}
    total = sum(weights.values())
    return {lang: w / total for lang, w in weights.items()}


class VllmWhisperBackend:
    """Options the stage passes and vLLM does not use (device: vLLM picks its platform;
    compute_type, cpu_threads, window_margin_s) are accepted and ignored; so is `beam_size`:
    decoding is greedy, as in vLLM's own Whisper serving."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        batch_size: int = 64,
        gpu_memory_utilization: float = 0.8,
        **_unused: object,
    ):
        try:
            from vllm import LLM
        except ImportError:
            raise MissingExtraError("vllm", "vllm", extra="vllm") from None
        self.model_id = model
        self.llm = LLM(
            model=model,
            max_model_len=448,
            max_num_seqs=batch_size,
            limit_mm_per_prompt={"audio": 1},
            max_logprobs=120,
            gpu_memory_utilization=gpu_memory_utilization,
        )
        self.tokenizer = self.llm.get_tokenizer()
        vocabulary = self.tokenizer.get_vocab()
        self.languages = {
            i: match.group(1)
            for tok, i in vocabulary.items()
            if (match := LANGUAGE_TOKEN.match(tok))
        }
        self.end_of_text = vocabulary["<|endoftext|>"]
        self.timestamp_begin = vocabulary["<|0.00|>"]

    @staticmethod
    def _request(audio: np.ndarray, decoder: str) -> dict:
        return {
            "encoder_prompt": {"prompt": "", "multi_modal_data": {"audio": (audio, SAMPLE_RATE)}},
            "decoder_prompt": decoder,
        }

    def language_probabilities(self, windows: list[np.ndarray]) -> list[dict[str, float]]:
        from vllm import SamplingParams

        params = SamplingParams(
            temperature=0.0,
            max_tokens=1,
            logprobs=len(self.languages),
            allowed_token_ids=list(self.languages),
        )
        requests = [self._request(w, "<|startoftranscript|>") for w in windows]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        return [
            language_distribution(
                {t: lp.logprob for t, lp in o.outputs[0].logprobs[0].items()}, self.languages
            )
            for o in outputs
        ]

    def transcribe(
        self, audios: list[np.ndarray], languages: list[str], *, timestamps: bool = False
    ) -> list[Hypothesis]:
        from vllm import SamplingParams

        params = SamplingParams(
            temperature=0.0, max_tokens=MAX_TOKENS, skip_special_tokens=not timestamps
        )
        requests = [
            self._request(a, decoder_prompt(lang, timestamps)) for a, lang in zip(audios, languages)
        ]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        return [
            self._hypothesis(list(o.outputs[0].token_ids), o.outputs[0].cumulative_logprob, a)
            for o, a in zip(outputs, audios)
        ]

    def _hypothesis(self, tokens: list[int], cumulative: float | None, audio) -> Hypothesis:
        kept = [t for t in tokens if t < self.end_of_text or t >= self.timestamp_begin]
        duration = len(audio) / SAMPLE_RATE
        return Hypothesis(
            text=self.tokenizer.decode([t for t in kept if t < self.end_of_text]).strip(),
            avg_logprob=None if cumulative is None else cumulative / max(1, len(tokens)),
            segments=timed_phrases(kept, self.timestamp_begin, self.tokenizer.decode, duration),
        )
