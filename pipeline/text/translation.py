"""Translations by an LLM, each kept only when it passes Granary's guards.

A translation is stored per target language, either as text or as the reason it was refused
(never both): the source or the translation has one word or none; their word counts differ by
a factor of 4 or more; fewer than 80 % of either side's letters belong to its language's
alphabet (`pipeline/data/alphabets.yaml`); text LID (langid, or fastText where `text_lid`
names a model) does not recognise either side as its language; the translation has more
sentence ends than a punctuated source (an appended "I hope this helps!"); or, where a
quality-estimation (QE) model is configured, it scores the pair below `min_qe_score`. A source
that fails its own guards is not sent to the LLM at all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Protocol

import yaml
from pydantic import Field

from pipeline.extras import MissingExtraError
from pipeline.llm import LlmBackend
from pipeline.llm.answers import clean_answer
from pipeline.llm.conversations import UnknownLanguageError, language_name, translation_conversation
from pipeline.text.lid import TextLidConfig, identify_language
from pipeline.text.normalise import normalise_text
from pipeline.validation import Count, CountOrZero, Share

REASONS = (
    "translation_source_too_short",
    "translation_source_impure",
    "translation_source_language",
    "translation_empty",
    "translation_too_short",
    "translation_word_ratio",
    "translation_added_sentence",
    "translation_impure",
    "translation_wrong_language",
    "translation_low_qe",
)


@dataclass(frozen=True)
class TranslationConfig:
    min_words: Count = 2  # "more than one word" on both sides
    # refused at this ratio of word counts (longer / shorter) or above
    max_word_ratio: Annotated[float, Field(strict=True, gt=1)] = 4.0
    min_purity: Share = 0.8  # share of a side's letters in its language's alphabet
    check_language: bool = True  # text LID must recognise each side as its language
    text_lid: TextLidConfig = field(default_factory=TextLidConfig)  # langid, or fastText by path
    qe_model: str | None = None  # a COMET QE checkpoint (e.g. Unbabel/wmt22-cometkiwi-da)
    min_qe_score: Share = 0.7  # CometKiwi's scale (about 0-1); tune on the corpus at hand
    qe_batch_size: Count = 32
    qe_gpus: CountOrZero = 0  # 0: QE on the CPU


@dataclass(frozen=True)
class TranslationResult:
    text: str | None  # the translation, when every guard passed
    reason: str | None  # else why not: one of REASONS
    answer: str | None = None  # the LLM's answer without wrappers, kept to see why it failed
    qe_score: float | None = None


@dataclass(frozen=True)
class Alphabet:
    letters: frozenset[str]
    ranges: tuple[tuple[int, int], ...]
    spaced: bool  # words separated by spaces

    def __contains__(self, char: str) -> bool:
        return char in self.letters or any(lo <= ord(char) <= hi for lo, hi in self.ranges)


@cache
def alphabet(language: str) -> Alphabet:
    """The letters `language` (ISO 639-1) is written with, from alphabets.yaml."""
    where = "pipeline/data/alphabets.yaml"
    known = yaml.safe_load(
        (resources.files("pipeline") / "data" / "alphabets.yaml").read_text(encoding="utf-8")
    )["languages"]
    if language not in known:
        raise UnknownLanguageError("alphabet", language, list(known), where)
    entry = known[language]
    letters = entry.get("letters", "")
    ranges = [r.split("-") for r in entry.get("ranges", [])]
    return Alphabet(
        letters=frozenset("".join(letters) if isinstance(letters, list) else letters),
        ranges=tuple((int(lo, 16), int(hi, 16)) for lo, hi in ranges),
        spaced=entry.get("spaced", True),
    )


def word_count(text: str, language: str) -> int:
    """Words, or letters in a script written without spaces (Chinese, Japanese)."""
    normalised = normalise_text(text)
    if alphabet(language).spaced:
        return len(normalised.split())
    return sum(c.isalpha() for c in normalised)


def charset_purity(text: str, language: str) -> float:
    """The share of the letters of `text` that belong to the alphabet of `language`; 0 when
    it has no letters at all."""
    letters = [c for c in text.lower() if c.isalpha()]
    if not letters:
        return 0.0
    script = alphabet(language)
    return sum(c in script for c in letters) / len(letters)


def _side_reason(text: str, language: str, config: TranslationConfig, side: str) -> str | None:
    """The guards one side of a pair must pass alone; `side` is "source" or "" (translation)."""
    prefix = f"translation_{side}_" if side else "translation_"
    if word_count(text, language) < config.min_words:
        return prefix + "too_short"
    if charset_purity(text, language) < config.min_purity:
        return prefix + "impure"
    if config.check_language and identify_language(text, config.text_lid)[0] != language:
        return prefix + ("language" if side else "wrong_language")
    return None


def source_reason(source: str, language: str, config: TranslationConfig) -> str | None:
    """Why `source` should not be translated at all, or None."""
    return _side_reason(source, language, config, "source")


def translation_reason(
    source: str, translation: str, source_lang: str, target_lang: str, config: TranslationConfig
) -> str | None:
    """Why `translation` (already without wrappers) of `source` is refused, or None.
    The source's own guards are `source_reason`'s."""
    if not normalise_text(translation):
        return "translation_empty"
    reason = _side_reason(translation, target_lang, config, "")
    if reason == "translation_too_short":
        return reason
    counts = sorted((word_count(source, source_lang), word_count(translation, target_lang)))
    if counts[1] >= config.max_word_ratio * counts[0]:
        return "translation_word_ratio"
    return reason or _added_sentence(source, translation)


_SENTENCE_END = re.compile(r"[.!?…。！？]+(?=\s|$)")


def _added_sentence(source: str, translation: str) -> str | None:
    """A model that appends "I hope this helps!" passes the ratio and the language checks;
    more sentence ends than the (punctuated) source had gives it away."""
    ends = len(_SENTENCE_END.findall(source.strip()))
    if ends and len(_SENTENCE_END.findall(translation.strip())) > ends:
        return "translation_added_sentence"
    return None


class QualityEstimator(Protocol):
    """A reference-free translation quality model: one score per (source, translation)."""

    def score(self, sources: Sequence[str], translations: Sequence[str]) -> list[float]: ...


class CometQualityEstimator:
    """COMET's QE models (CometKiwi). `model` is a checkpoint file (`.ckpt`), a clone of the
    model's hub repository, or a hub id that COMET fetches once into its cache (CometKiwi is
    gated on the hub: accept its licence there first)."""

    def __init__(self, model: str, batch_size: int = 32, gpus: int = 0):
        try:
            import comet
        except ImportError:
            raise MissingExtraError("quality estimation", "unbabel-comet", extra="qe") from None
        local = Path(model)
        if local.is_dir():
            local = local / "checkpoints" / "model.ckpt"
        path = str(local) if local.is_file() else comet.download_model(model)
        self.model = comet.load_from_checkpoint(path)
        self.batch_size, self.gpus = batch_size, gpus

    def score(self, sources: Sequence[str], translations: Sequence[str]) -> list[float]:
        data = [{"src": s, "mt": t} for s, t in zip(sources, translations, strict=True)]
        prediction = self.model.predict(
            data, batch_size=self.batch_size, gpus=self.gpus, progress_bar=False
        )
        return [float(s) for s in prediction.scores]


def load_quality_estimator(config: TranslationConfig) -> QualityEstimator | None:
    """The QE model the config names, or None when QE is off."""
    if config.qe_model is None:
        return None
    return CometQualityEstimator(config.qe_model, config.qe_batch_size, config.qe_gpus)


def translate(
    texts: Sequence[str],
    source_langs: Sequence[str],
    targets: Sequence[str],
    backend: LlmBackend,
    config: TranslationConfig | None = None,
    qe: QualityEstimator | None = None,
) -> list[dict[str, TranslationResult]]:
    """Each text (in its row's language) translated into every target but its own language,
    in one call to the backend; QE, when given, scores every translation the guards kept.
    The default config is built per call: building it checks the LID model in the cache,
    which must not happen when vaglio is merely imported."""
    config = config or TranslationConfig()
    for language in {*source_langs, *targets}:  # unknown languages fail before any LLM call
        language_name(language)
        alphabet(language)
    results: list[dict[str, TranslationResult]] = [{} for _ in texts]
    asked: list[tuple[int, str]] = []
    for i, (text, source) in enumerate(zip(texts, source_langs, strict=True)):
        wanted = [t for t in targets if t != source]
        refused = source_reason(text, source, config) if wanted else None
        for target in wanted:
            if refused:
                results[i][target] = TranslationResult(None, refused)
            else:
                asked.append((i, target))
    answers = backend.complete(
        [translation_conversation(texts[i], source_langs[i], t) for i, t in asked]
    )
    kept: list[tuple[int, str, str]] = []
    for (i, target), answer in zip(asked, answers, strict=True):
        cleaned = clean_answer(answer, label=language_name(target))
        reason = translation_reason(texts[i], cleaned, source_langs[i], target, config)
        results[i][target] = TranslationResult(None if reason else cleaned, reason, cleaned)
        if reason is None:
            kept.append((i, target, cleaned))
    if qe is not None and kept:
        scores = qe.score([texts[i] for i, _, _ in kept], [c for _, _, c in kept])
        for (i, target, cleaned), score in zip(kept, scores, strict=True):
            low = score < config.min_qe_score
            results[i][target] = TranslationResult(
                None if low else cleaned, "translation_low_qe" if low else None, cleaned, score
            )
    return results
