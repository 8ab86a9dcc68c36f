"""Punctuation and capitalisation (PnC) restored by an LLM, with a guard that keeps the words.

An LLM asked to punctuate sometimes also "fixes" a word, drops a repetition, adds a closing
"Thank you.", or answers in English. A transcript is what was said, so the answer is accepted
only when its words are the input's words: after normalising both (lower case, punctuation
removed) the answer must have the same number of words and a character error rate (CER)
against the input of at most `max_cer`. Otherwise the row keeps its input and a reason.

Why the same word count *and* a CER: the CER alone scales with length, so a 600-character
utterance could gain "Thank you." (9 characters, 1.5 %) under any useful threshold; an equal
word count refuses every added or removed word, whatever the length. Why `max_cer` = 0.02:
with the count fixed, what remains is edits inside words; 2 % lets a model restore an accent
or an apostrophe ("perche" -> "perché") in an utterance of 50 characters or more, and refuses
a replaced word ("market" -> "supermarket", "went" -> "want" in a short sentence). Granary's
reference filter (NeMo SDP, QwenGenerationFiltering) allows 10 % CER, which accepts a changed
word in most sentences; its upper-case guard (more than 60 % capitals) is kept here.

Where the backend can hold its decoder to a grammar (`pipeline/text/pnc_grammar.py`), each row
is sent with one that allows only its own words, so the answer keeps them by construction; the
word guard still checks every answer, and must never fire on one. A backend that cannot
constrain generates freely, and the guard throws away what changed a word.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import jiwer
from pydantic import Field

from pipeline.llm import LlmBackend, LlmConfig
from pipeline.llm.answers import clean_answer
from pipeline.llm.conversations import pnc_conversation, pnc_languages
from pipeline.text.lid import identify_language
from pipeline.text.normalise import normalise_text
from pipeline.text.pnc_grammar import pnc_constraint

# Why a row kept its input. Skipped: the LLM was not asked. Rejected: it answered, badly.
SKIPPED = ("pnc_already_punctuated", "pnc_no_words", "pnc_no_prompt")
REJECTED = (
    "pnc_empty",
    "pnc_added_words",
    "pnc_removed_words",
    "pnc_changed_words",
    "pnc_other_language",
    "pnc_upper_case",
)
# Marks that only a punctuated text has (apostrophes and hyphens occur inside words).
_MARKS = set(".,;:?!…¿¡。、，？！؟،؛")


@dataclass(frozen=True)
class PncConfig:
    # between normalised input and answer, word count equal (see above); 1 would accept any
    max_cer: Annotated[float, Field(strict=True, ge=0, lt=1)] = 0.02
    # of the answer's cased letters; Granary's reference value
    max_upper_share: Annotated[float, Field(strict=True, gt=0, le=1)] = 0.6
    force: bool = False  # also re-punctuate text that came punctuated from its source


@dataclass(frozen=True)
class PncResult:
    text: str  # what the row keeps: the answer when accepted, else the input unchanged
    reason: str | None = None  # None when the answer was accepted; else one of SKIPPED, REJECTED
    cer: float | None = None  # normalised input vs answer, where one was compared

    @property
    def rejected(self) -> bool:
        """The LLM answered and the answer was refused: worth a flag and a count."""
        return self.reason in REJECTED


def _upper_share(text: str) -> float:
    cased = [c for c in text if c.isupper() or c.islower()]
    return sum(c.isupper() for c in cased) / len(cased) if cased else 0.0


def decoding_note(llm: LlmConfig) -> str:
    """How the answers of a run were produced, for its summary."""
    if llm.constrains:
        return f"constrained ({llm.decoding}): words kept by construction"
    return "free, then the word guard (set llm.guided_decoding to constrain)"


def is_punctuated(text: str) -> bool:
    """Whether `text` already has punctuation and capitals (from the source, or an ASR model
    that writes them), so that PnC would only risk changing it. Scripts without case need
    only the punctuation."""
    has_marks = any(c in _MARKS for c in unicodedata.normalize("NFKC", text))
    has_case = any(c.isupper() or c.islower() for c in text)
    return has_marks and (not has_case or any(c.isupper() for c in text))


def check_pnc(
    original: str,
    answer: str,
    language: str,
    config: PncConfig = PncConfig(),
    constrained: bool = False,
) -> PncResult:
    """The LLM's `answer` for the transcript `original` (in `language`), accepted or refused.
    A `constrained` answer is the grammar's own text: no wrapper to remove (removing a
    "here is the text:" that the row itself says would remove its words), and no shouting
    to fear, as only first letters could be capitalised."""
    reference = normalise_text(original)
    if not reference:
        return PncResult(original, "pnc_no_words")
    cleaned = " ".join(answer.split()) if constrained else clean_answer(answer)
    hypothesis = normalise_text(cleaned)
    if not hypothesis:
        return PncResult(original, "pnc_empty")
    if hypothesis == reference:
        cer = 0.0
    else:
        cer = float(jiwer.cer(reference, hypothesis))
        extra_words = len(hypothesis.split()) - len(reference.split())
        if extra_words or cer > config.max_cer:
            if identify_language(cleaned)[0] != language:
                reason = "pnc_other_language"
            elif extra_words:
                reason = "pnc_added_words" if extra_words > 0 else "pnc_removed_words"
            else:
                reason = "pnc_changed_words"
            return PncResult(original, reason, cer)
    if not constrained and _upper_share(cleaned) > max(
        config.max_upper_share, _upper_share(original)
    ):
        return PncResult(original, "pnc_upper_case", cer)
    return PncResult(cleaned, None, cer)


def restore_punctuation(
    texts: Sequence[str],
    languages: Sequence[str],
    backend: LlmBackend,
    config: PncConfig = PncConfig(),
) -> list[PncResult]:
    """PnC for a batch of transcripts (one language per row), in one call to the backend,
    each row with the constraint that keeps its words (which also bounds the answer's length
    where the backend cannot constrain). Rows that need no LLM (already punctuated, no words,
    no prompt for their language) are not sent."""
    with_prompt = set(pnc_languages())
    skipped: dict[int, PncResult] = {}
    for i, (text, language) in enumerate(zip(texts, languages, strict=True)):
        if not normalise_text(text):
            skipped[i] = PncResult(text, "pnc_no_words")
        elif language not in with_prompt:
            skipped[i] = PncResult(text, "pnc_no_prompt")
        elif is_punctuated(text) and not config.force:
            skipped[i] = PncResult(text, "pnc_already_punctuated")
    asked = [i for i in range(len(texts)) if i not in skipped]
    answers = backend.complete(
        [pnc_conversation(texts[i], languages[i]) for i in asked],
        [pnc_constraint(texts[i], languages[i]) for i in asked],
    )
    checked = {
        i: check_pnc(texts[i], answer, languages[i], config, backend.constrains)
        for i, answer in zip(asked, answers, strict=True)
    }
    return [skipped[i] if i in skipped else checked[i] for i in range(len(texts))]
