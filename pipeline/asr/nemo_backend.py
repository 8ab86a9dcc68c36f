"""NeMo ASR models (Parakeet, Canary) through `nemo_toolkit`, on a GPU or the CPU.

NeMo batches internally; audio goes in as numpy arrays, so nothing is written to disk.
Canary (a multitask model) is told the source and target language, the same one, and the
task `asr`, so it transcribes rather than translates; utterances are grouped by language for
that (NeMo 2.x/3.x `EncDecMultiTaskModel.transcribe(audio, ..., **prompt)` with the legacy
Canary slots source_lang/target_lang/task/pnc; slots a prompt format lacks are ignored).
Parakeet models (CTC, RNNT, TDT) take no language: the one asked for is ignored, so the
stage's language gate (a Whisper model) must keep other languages away from them. NeMo
models do not identify languages here; pass 1's `lid` model does that. A model trained by
`vaglio train` (`RUN/model.nemo`) is prompted like Canary: it says so with
`prompted_by_language` and takes the same source_lang/target_lang keywords.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

import numpy as np

from pipeline.asr.base import Hypothesis, TimedText
from pipeline.asr.word_timings import CANNOT_ALIGN, NOT_ALIGNED
from pipeline.extras import MissingExtraError


def _timed(entries: list[dict], key: str) -> tuple[TimedText, ...]:
    """Entries with a known time span; NeMo marks an unknown one with a start of -1."""
    return tuple(
        TimedText(float(e["start"]), float(e["end"]), str(e[key]).strip())
        for e in entries
        if e.get("start") is not None and e.get("end") is not None and float(e["start"]) >= 0
    )


def hypothesis_from_nemo(output: object) -> Hypothesis:
    """NeMo's transcription output (a string, or a hypothesis with `text`, `score`,
    `y_sequence` and a `timestamp` dict of 'segment' and 'word' entries in seconds) as our
    `Hypothesis`. `avg_logprob` is the score over the length of `y_sequence`: per token for
    RNNT/TDT and Canary, per frame for CTC, so compare it within one model only."""
    if isinstance(output, str):
        return Hypothesis(text=output.strip())
    stamps = getattr(output, "timestamp", None) or {}
    score = getattr(output, "score", None)
    sequence = getattr(output, "y_sequence", None)  # a tensor of token ids, or absent
    length = len(sequence) if sequence is not None else 0
    return Hypothesis(
        text=str(output.text).strip(),
        avg_logprob=float(score) / length if score is not None and length else None,
        segments=_timed(stamps.get("segment", []), "segment"),
        words=_timed(stamps.get("word", []), "word"),
    )


def allow_vaglio_trained_models() -> None:
    """Let NeMo restore models that `vaglio train` exported: their class is
    `training.model.FamaModel`, and NeMo 3 restores only classes under listed prefixes.
    (NeMo imports that module itself; the curation library does not.)"""
    from nemo.core.classes import common

    if "training." not in common.ALLOWED_TARGET_PREFIXES:
        common.ALLOWED_TARGET_PREFIXES.append("training.")


class NemoBackend:
    """Options the stage passes and NeMo does not use (compute_type, cpu_threads, beam_size,
    window_margin_s) are accepted and ignored: decoding follows the model's own config."""

    name = "nemo"

    def __init__(self, model: str, device: str = "cuda", batch_size: int = 16, **_unused: object):
        try:
            from nemo.collections.asr.models import ASRModel, EncDecMultiTaskModel
        except ImportError:
            raise MissingExtraError(
                "the 'nemo' ASR backend", "nemo_toolkit", extra="nemo"
            ) from None
        self.model_id = model
        if Path(model).suffix == ".nemo" and Path(model).is_file():
            allow_vaglio_trained_models()
            self.model = ASRModel.restore_from(model, map_location=device)
        else:
            self.model = ASRModel.from_pretrained(model, map_location=device)
        self.model.eval()
        self.multitask = isinstance(self.model, EncDecMultiTaskModel) or getattr(
            self.model, "prompted_by_language", False
        )
        self.batch_size = batch_size

    def language_probabilities(self, windows: list[np.ndarray]) -> list[dict[str, float]]:
        raise NotImplementedError("NeMo ASR models do not identify languages; use a Whisper lid")

    def _check_languages(self, languages: set[str]) -> None:
        """Refuse, before any decoding, a language Canary has no prompt token for (NeMo would
        fail deep inside with a bare KeyError)."""
        special = getattr(self.model.tokenizer, "special_tokens", None)
        if not isinstance(special, dict):
            return
        unknown = sorted(lang for lang in languages if f"<|{lang}|>" not in special)
        if unknown:
            known = [lang for lang in getattr(self.model.tokenizer, "langs", []) if "_" not in lang]
            raise ValueError(f"{self.model_id} cannot transcribe {unknown}; it knows {known}")

    def _times_words(self) -> bool:
        """CTC, RNNT and TDT models time words (NeMo's `timestamps`), and so does a model of
        `vaglio train` (a CTC forced alignment); Canary's word timestamps need a model of its
        own that the backend does not load, so it times none."""
        return not self.multitask or getattr(self.model, "prompted_by_language", False)

    def transcribe(
        self,
        audios: list[np.ndarray],
        languages: list[str],
        *,
        timestamps: bool = False,
        word_timings: bool = False,
    ) -> list[Hypothesis]:
        aligns = word_timings and self._times_words()
        groups: dict[str, list[int]] = defaultdict(list)
        for index, lang in enumerate(languages):
            groups[lang if self.multitask else ""].append(index)
        if self.multitask:
            self._check_languages(set(groups))
        hypotheses: dict[int, Hypothesis] = {}
        for lang, indices in groups.items():
            prompt = (
                {"source_lang": lang, "target_lang": lang, "task": "asr", "pnc": "yes"}
                if lang
                else {}
            )
            outputs = self.model.transcribe(
                audio=[audios[i] for i in indices],
                batch_size=self.batch_size,
                return_hypotheses=True,  # scores too, not only text
                timestamps=timestamps or aligns,
                verbose=False,
                **prompt,
            )
            if isinstance(outputs, tuple):  # older RNNT models: (best, all) hypotheses
                outputs = outputs[0]
            for index, output in zip(indices, outputs):
                hypotheses[index] = hypothesis_from_nemo(output)
        if word_timings:
            missing = NOT_ALIGNED if aligns else CANNOT_ALIGN
            for index, hypothesis in hypotheses.items():
                if not hypothesis.words:
                    hypotheses[index] = dataclasses.replace(hypothesis, words_missing=missing)
        return [hypotheses[i] for i in range(len(audios))]
