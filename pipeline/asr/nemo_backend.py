"""NeMo ASR models (Parakeet, Canary) through `nemo_toolkit`, on a GPU or the CPU.

NeMo batches internally; audio goes in as numpy arrays, so nothing is written to disk.
Canary (a multitask model) is told the source and target language, the same one, so it
transcribes rather than translates; utterances are grouped by language for that. Parakeet
models are single-language: they transcribe whatever language is asked, so the stage's
language gate (a Whisper model) must keep other languages away from them. NeMo models do
not identify languages here; pass 1's `lid` model does that.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from pipeline.asr.base import Hypothesis, MissingExtraError, TimedText


def _timed(entries: list[dict], key: str) -> tuple[TimedText, ...]:
    return tuple(
        TimedText(float(e["start"]), float(e["end"]), str(e[key]).strip())
        for e in entries
        if "start" in e and "end" in e
    )


def hypothesis_from_nemo(output: object) -> Hypothesis:
    """NeMo's transcription output (a string, or a hypothesis with `text` and a `timestamp`
    dict of 'segment' and 'word' entries in seconds) as our `Hypothesis`."""
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


class NemoBackend:
    """Options the stage passes and NeMo does not use (compute_type, cpu_threads, beam_size,
    window_margin_s) are accepted and ignored: decoding follows the model's own config."""

    name = "nemo"

    def __init__(self, model: str, device: str = "cuda", batch_size: int = 16, **_unused: object):
        try:
            from nemo.collections.asr.models import ASRModel, EncDecMultiTaskModel
        except ImportError:
            raise MissingExtraError("nemo", "nemo_toolkit", extra="nemo") from None
        self.model_id = model
        if Path(model).suffix == ".nemo" and Path(model).is_file():
            self.model = ASRModel.restore_from(model, map_location=device)
        else:
            self.model = ASRModel.from_pretrained(model, map_location=device)
        self.model.eval()
        self.multitask = isinstance(self.model, EncDecMultiTaskModel)
        self.batch_size = batch_size

    def language_probabilities(self, windows: list[np.ndarray]) -> list[dict[str, float]]:
        raise NotImplementedError("NeMo ASR models do not identify languages; use a Whisper lid")

    def transcribe(
        self, audios: list[np.ndarray], languages: list[str], *, timestamps: bool = False
    ) -> list[Hypothesis]:
        groups: dict[str, list[int]] = defaultdict(list)
        for index, lang in enumerate(languages):
            groups[lang if self.multitask else ""].append(index)
        hypotheses: dict[int, Hypothesis] = {}
        for lang, indices in groups.items():
            options = {"source_lang": lang, "target_lang": lang, "pnc": "yes"} if lang else {}
            outputs = self.model.transcribe(
                audio=[audios[i] for i in indices],
                batch_size=self.batch_size,
                timestamps=timestamps,
                verbose=False,
                **options,
            )
            if isinstance(outputs, tuple):  # RNNT models: (best, all) hypotheses
                outputs = outputs[0]
            for index, output in zip(indices, outputs):
                hypotheses[index] = hypothesis_from_nemo(output)
        return [hypotheses[i] for i in range(len(audios))]
