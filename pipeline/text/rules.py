"""Hallucination rules on a transcript, its duration and its audio language.

Whisper's typical failures are loops ("the the the …"), invented long tokens, stock phrases
learnt from subtitles ("Thanks for watching!", "Sottotitoli creati dalla comunità
Amara.org"), text far too dense or too sparse for the audio it came from, and text in another
language than the audio. Each rule has its own drop reason; the first that fires is recorded.
Thresholds default to Granary's (arXiv 2505.13404, steps 17–20) where it gives them.

Every rule is linear in the words of a row (a runaway transcript of 200 000 words is read in
well under a second): a loop of a phrase is found from the positions where a word equals the
word one phrase later, and no phrase longer than `max_loop_words` is looked for.
"""

from __future__ import annotations

import heapq
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.stage import StageConfigError
from pipeline.text.numbers import with_digits
from pipeline.validation import Count, CountOrZero, NonNegative, Positive, Share

EMPTY_TEXT = "empty_text"
KNOWN_PHRASE = "known_hallucination"
REPEATED_WORDS = "repeated_words"
REPEATED_NGRAMS = "repeated_ngrams"
LONG_WORD = "long_word"
CHARS_PER_SECOND_HIGH = "chars_per_second_high"
WORDS_PER_SECOND_HIGH = "words_per_second_high"
CHARS_PER_SECOND_LOW = "chars_per_second_low"
LANG_MISMATCH = "lang_mismatch"

REASONS = (
    EMPTY_TEXT,
    KNOWN_PHRASE,
    REPEATED_WORDS,
    REPEATED_NGRAMS,
    LONG_WORD,
    CHARS_PER_SECOND_HIGH,
    WORDS_PER_SECOND_HIGH,
    CHARS_PER_SECOND_LOW,
    LANG_MISMATCH,
)
"""The text rules' drop reasons, in the order they are checked."""

PHRASES_DIR = Path(__file__).parent.parent / "data" / "hallucinations"
ALWAYS_CHECKED = ("en",)
"""Whisper's stock English phrases turn up whatever the audio language."""

_ASIDE = re.compile(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>|\*[^*]*\*")
_WORD = re.compile(r"\w+(?:'\w+)*")
_LANG_CODE = re.compile(r"[a-z]{2,3}")


@dataclass(frozen=True)
class HallucinationConfig:
    max_unique_word_share: Share = 0.4  # drop when unique/total words is at or below this...
    min_words_for_share: Count = 8  # ...for texts of at least this many words
    max_loop_repeats: Count = 3  # drop when a phrase of 2+ words repeats back to back this often
    max_word_repeats: Count = 4  # ...or one word does ("no, no, no" is speech)
    # Longest phrase looked for in a loop: three times 80 words is already more than the
    # longest utterance (40 s) holds at the highest word rate (6 words/s).
    max_loop_words: Count = 80
    max_word_chars: Count = 25
    max_word_ratio: Positive = 3.0  # longest word vs the next longest...
    min_chars_for_ratio: CountOrZero = 20  # ...from this length: "Oh, congratulations!" is speech
    compound_languages: str = "da de et fi hu is nb nl no sv"  # write compounds as one word
    compound_max_word_chars: Count = 40  # their long-word limit; the ratio test is skipped
    phrases_dir: str | None = None  # <lang>.txt files of phrases added to the shipped lists
    max_chars_per_second: Positive = 25.0
    max_words_per_second: Positive = 6.0
    min_chars_per_second: NonNegative = 0.5  # "Thank you" for 20 s of speech is not a transcript
    min_words_for_lang: CountOrZero = 3  # text LID on shorter texts is noise
    min_lang_prob: Share = 0.9  # a mismatch counts only when text LID is this sure

    def __post_init__(self) -> None:
        if self.phrases_dir is not None and not Path(self.phrases_dir).is_dir():
            raise StageConfigError(f"rules.phrases_dir: {self.phrases_dir} is not a folder")


def words(text: str) -> list[str]:
    """Lower-case words, without punctuation and bracketed asides ("[Music]", "(laughs)").

    Apostrophes stay inside words ("c'est", "don't"), so French and Italian elisions count as
    one word in the word rate.
    """
    text = unicodedata.normalize("NFKC", text).replace("’", "'").casefold()
    return _WORD.findall(_ASIDE.sub(" ", text))


def normal_words(written: str, lang: str | None) -> list[str]:
    """The one form that the rules below and the pass-1/pass-2 comparison read: the `words` of
    a row's written form (`pipeline.text.written`), every number as digits where text2num
    reads `lang` ("Ten of clubs" and "10 of clubs" are the same words; NeMo writes numbers up
    to twelve as words)."""
    return words(with_digits(written, lang))


def _phrase_key(tokens: list[str]) -> tuple[str, ...]:
    """Words with every number as "0", so "Untertitel im Auftrag des ZDF, 2017" covers all years."""
    return tuple("0" if token.isdigit() else token for token in tokens)


@cache
def known_phrases(lang: str, phrases_dir: str | None = None) -> frozenset[tuple[str, ...]]:
    """The phrases Whisper is known to invent in `lang` (and English), as word tuples.

    Lists are `<lang>.txt` files, one phrase a line, `#` starting a comment line.
    """
    phrases = set()
    for code in dict.fromkeys((lang, *ALWAYS_CHECKED)):
        if not _LANG_CODE.fullmatch(code):
            continue
        for folder in (PHRASES_DIR, *([Path(phrases_dir)] if phrases_dir else [])):
            path = folder / f"{code}.txt"
            lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
            for line in (line for line in lines if not line.lstrip().startswith("#")):
                # as a row in the list's language reads it, and as one in any other language
                phrases.update({_phrase_key(normal_words(line, code)), _phrase_key(words(line))})
    phrases.discard(())
    return frozenset(phrases)


def known_phrase(tokens: list[str], lang: str, config: HallucinationConfig) -> str | None:
    """The text is a listed phrase, or several back to back ("Thank you. Thank you.").

    A listed phrase inside a longer sentence is speech, not a hallucination.
    """
    phrases = known_phrases(lang, config.phrases_dir)
    if not phrases:
        return None
    longest = max(map(len, phrases))
    covered = [True] + [False] * len(tokens)  # covered[i]: tokens[:i] is a sequence of phrases
    last_covered = 0
    for end in range(1, len(tokens) + 1):
        if end - last_covered > longest:
            return None  # no phrase can bridge the gap: the text is no sequence of phrases
        covered[end] = any(
            covered[start] and _phrase_key(tokens[start:end]) in phrases
            for start in range(max(0, end - longest), end)
        )
        last_covered = end if covered[end] else last_covered
    return KNOWN_PHRASE if covered[-1] else None


def _word_ids(tokens: list[str]) -> tuple[np.ndarray, int]:
    """Each word as a number (equal words as equal numbers), and how many distinct words."""
    encoded = pc.dictionary_encode(pa.array(tokens, pa.string()))
    return encoded.indices.to_numpy(), len(encoded.dictionary)


def _loops(ids: np.ndarray, n: int, copies: int) -> bool:
    """Some `n`-word phrase comes `copies` times back to back ("a b a b a b": n=2, copies=3).

    That is a stretch of (copies - 1) * n consecutive positions where each word equals the
    word n later: found in linear time from the (few, in speech) positions where one does.
    """
    stretch = (copies - 1) * n
    if len(ids) < copies * n or stretch == 0:
        return len(ids) >= copies * n
    equal = np.flatnonzero(ids[:-n] == ids[n:])
    if len(equal) < stretch:
        return False
    return bool(np.any(equal[stretch - 1 :] - equal[: len(equal) - stretch + 1] == stretch - 1))


def repeated_ngrams(tokens: list[str], config: HallucinationConfig) -> str | None:
    """Few distinct words, or a phrase looping back to back.

    Natural speech repeats phrases across an utterance ("one of the … one of the"), but a
    decoder loop repeats them back to back.
    """
    ids, distinct = _word_ids(tokens)
    few_distinct = distinct / len(tokens) <= config.max_unique_word_share
    if len(tokens) >= config.min_words_for_share and few_distinct:
        return REPEATED_WORDS
    if _loops(ids, 1, config.max_word_repeats):
        return REPEATED_NGRAMS
    longest_phrase = min(len(tokens) // config.max_loop_repeats, config.max_loop_words)
    if any(_loops(ids, n, config.max_loop_repeats) for n in range(2, longest_phrase + 1)):
        return REPEATED_NGRAMS
    return None


def long_word(tokens: list[str], lang: str, config: HallucinationConfig) -> str | None:
    """A word too long to be one, or far longer than every other word of the text.

    German, Dutch, Finnish… write compounds as one word ("Datenschutzgrundverordnung"), so
    there only `compound_max_word_chars` counts.
    """
    lengths = heapq.nlargest(2, map(len, tokens))
    if lang in config.compound_languages.split():
        return LONG_WORD if lengths[0] >= config.compound_max_word_chars else None
    if lengths[0] >= config.max_word_chars:
        return LONG_WORD
    if (
        len(lengths) > 1
        and lengths[0] >= config.min_chars_for_ratio
        and lengths[0] >= config.max_word_ratio * lengths[1]
    ):
        return LONG_WORD
    return None


def impossible_rate(tokens: list[str], duration: float, config: HallucinationConfig) -> str | None:
    """More characters or words than anyone can say in `duration`, or far too few.

    Characters are letters and digits of words, so punctuation and spaces do not count.
    """
    chars = sum(map(len, tokens))
    if chars > config.max_chars_per_second * duration:
        return CHARS_PER_SECOND_HIGH
    if len(tokens) > config.max_words_per_second * duration:
        return WORDS_PER_SECOND_HIGH
    if chars < config.min_chars_per_second * duration:
        return CHARS_PER_SECOND_LOW
    return None


def hallucination_reason(
    tokens: list[str], duration: float, lang: str, config: HallucinationConfig
) -> str | None:
    """The first rule that the `words` of a text break, or None; text language ID is
    `lang_mismatch`'s."""
    if not tokens:
        return EMPTY_TEXT
    return (
        known_phrase(tokens, lang, config)
        or repeated_ngrams(tokens, config)
        or long_word(tokens, lang, config)
        or impossible_rate(tokens, duration, config)
    )


def lang_mismatch(
    tokens: list[str], lang: str, text_lang: str, text_prob: float, config: HallucinationConfig
) -> str | None:
    """Text language ID is sure the text is not in the audio's language."""
    if (
        len(tokens) >= config.min_words_for_lang
        and text_lang != lang
        and text_prob >= config.min_lang_prob
    ):
        return LANG_MISMATCH
    return None
