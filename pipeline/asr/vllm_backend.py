"""Whisper through vLLM's offline engine, on a GPU.

vLLM schedules every utterance of a call as its own request and batches them continuously,
so one `generate` call over a whole shard keeps the GPU busy. Each request carries the audio
as the encoder's multi-modal input and a decoder prompt that forces the language.

Language ID asks for one decoding step after `<|startoftranscript|>` and reads the
log-probabilities of the language tokens, renormalised over the languages returned (as
Whisper itself does, softmax over language tokens only). vLLM V1 reports log-probabilities
of the raw logits by default (`logprobs_mode="raw_logprobs"`), i.e. before `allowed_token_ids`
masks them, so the top entries may include a few non-language tokens: more are asked for
than there are languages, and non-language ones are dropped.

vLLM V1 fills `cumulative_logprob` only when `logprobs` is requested, so transcription asks
for `logprobs=0` (the chosen token's only) to get an average log-probability.

Written against vLLM 0.9-0.20's documented Whisper example (explicit encoder/decoder prompts,
docs.vllm.ai examples/offline_inference/encoder_decoder_multimodal) and V1's LogprobsProcessor;
run for real only where a GPU is lent.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from pipeline.asr.base import Hypothesis
from pipeline.asr.whisper_tokens import LANGUAGE_TOKEN, decoder_prompt, timed_phrases
from pipeline.asr.word_timings import CANNOT_ALIGN
from pipeline.extras import MissingExtraError

SAMPLE_RATE = 16_000
MAX_TOKENS = 440  # Whisper's decoder holds 448 positions, the (4-token) prompt included
MAX_LOGPROBS = 128  # Whisper knows at most 100 languages; room for non-language tokens


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
    """Whisper on vLLM. `batch_size` caps the sequences decoded at once (`max_num_seqs`): set
    it far higher than for faster-whisper (e.g. 64-256). Options the stage passes and vLLM does
    not use are accepted and ignored: `device` (vLLM picks its platform), `compute_type`,
    `cpu_threads`, `window_margin_s`, and `beam_size` (decoding is greedy, as in vLLM's own
    Whisper serving)."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        device: str = "cuda",
        batch_size: int = 64,
        beam_size: int = 1,
        gpu_memory_utilization: float = 0.8,
        **_unused: object,
    ):
        try:
            from vllm import LLM
        except ImportError:
            raise MissingExtraError("the 'vllm' ASR backend", "vllm", extra="vllm") from None
        self.model_id = model
        self.llm = LLM(
            model=model,
            max_model_len=448,
            max_num_seqs=batch_size,
            limit_mm_per_prompt={"audio": 1},
            max_logprobs=MAX_LOGPROBS,
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
        # Whisper's convention: `<|0.00|>` follows `<|notimestamps|>`, whether or not the
        # tokenizer lists the timestamp tokens by name.
        self.timestamp_begin = vocabulary["<|notimestamps|>"] + 1

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
            logprobs=MAX_LOGPROBS,
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
        self,
        audios: list[np.ndarray],
        languages: list[str],
        *,
        timestamps: bool = False,
        word_timings: bool = False,
    ) -> list[Hypothesis]:
        """vLLM returns no cross-attention, so words are not timed: with `word_timings`, each
        hypothesis says so in `words_missing`."""
        from vllm import SamplingParams

        unknown = sorted(set(languages) - set(self.languages.values()))
        if unknown:  # an unknown `<|xx|>` would be tokenised as text and decode garbage
            raise ValueError(f"Whisper ({self.model_id}) does not know the languages {unknown}")
        params = SamplingParams(
            temperature=0.0,
            max_tokens=MAX_TOKENS,
            logprobs=0,  # only so that vLLM V1 fills cumulative_logprob
            skip_special_tokens=not timestamps,
        )
        requests = [
            self._request(a, decoder_prompt(lang, timestamps)) for a, lang in zip(audios, languages)
        ]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        hypotheses = [
            self._hypothesis(o.outputs[0].token_ids, o.outputs[0].cumulative_logprob, a, timestamps)
            for o, a in zip(outputs, audios)
        ]
        if word_timings:
            return [dataclasses.replace(h, words_missing=CANNOT_ALIGN) for h in hypotheses]
        return hypotheses

    def _hypothesis(
        self, tokens: list[int], cumulative: float | None, audio: np.ndarray, timestamps: bool
    ) -> Hypothesis:
        """Text without special tokens; with `timestamps`, phrases between timestamp tokens."""
        tokens = list(tokens)
        kept = [t for t in tokens if t < self.end_of_text or t >= self.timestamp_begin]
        duration = len(audio) / SAMPLE_RATE
        phrases = (
            timed_phrases(kept, self.timestamp_begin, self.tokenizer.decode, duration)
            if timestamps
            else ()
        )
        return Hypothesis(
            text=self.tokenizer.decode([t for t in kept if t < self.end_of_text]).strip(),
            avg_logprob=None if cumulative is None else cumulative / max(1, len(tokens)),
            segments=phrases,
        )
