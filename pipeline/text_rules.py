"""Hallucination rules on a transcript and its duration: each returns a drop reason or None.

Whisper's typical failures are loops ("the the the …"), invented long tokens, text far too
dense for the audio it came from, and text in another language than the audio. The rules
run in order; the first that fires names the row's `drop_reason`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"\w+(?:['’]\w+)*")


@dataclass(frozen=True)
class HallucinationConfig:
    max_unique_word_share: float = 0.4  # drop when unique/total words is at or below this...
    min_words_for_share: int = 8  # ...for texts of at least this many words
    max_loop_repeats: int = 3  # drop when a phrase of 2-6 words repeats back to back this often
    max_word_chars: int = 25
    max_word_ratio: float = 3.0  # longest word vs the next longest...
    min_chars_for_ratio: int = 15  # ...when the longest has at least this many characters
    max_chars_per_second: float = 25.0
    max_words_per_second: float = 6.0
    min_words_for_lang: int = 3  # text LID on shorter texts is noise
    min_lang_prob: float = 0.9  # a mismatch counts only when langid is this sure


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _longest_loop(tokens: list[str], max_n: int = 6) -> int:
    """Most back-to-back repetitions of any 2..max_n word phrase ("a b a b a b" -> 3).

    Natural speech repeats phrases across a 30 s chunk ("one of the"), but a decoder loop
    repeats them back to back.
    """
    best = 1
    for n in range(2, max_n + 1):
        for start in range(len(tokens) - 2 * n + 1):
            count = 1
            while tokens[start + count * n : start + (count + 1) * n] == tokens[start : start + n]:
                count += 1
            best = max(best, count)
    return best


def repeated_ngrams(tokens: list[str], config: HallucinationConfig) -> str | None:
    if len(tokens) >= config.min_words_for_share:
        share = len(set(tokens)) / len(tokens)
        if share <= config.max_unique_word_share:
            return "repeated_words"
    if _longest_loop(tokens) >= config.max_loop_repeats:
        return "repeated_ngrams"
    return None


def long_word(tokens: list[str], config: HallucinationConfig) -> str | None:
    lengths = sorted((len(t) for t in tokens), reverse=True)
    if not lengths:
        return None
    if lengths[0] >= config.max_word_chars:
        return "long_word"
    if (
        len(lengths) > 1
        and lengths[0] >= config.min_chars_for_ratio
        and lengths[0] >= config.max_word_ratio * lengths[1]
    ):
        return "long_word"
    return None


def impossible_rate(
    text: str, tokens: list[str], duration: float, config: HallucinationConfig
) -> str | None:
    if duration <= 0:
        return "chars_per_second"
    if len(text.replace(" ", "")) / duration > config.max_chars_per_second:
        return "chars_per_second"
    if len(tokens) / duration > config.max_words_per_second:
        return "words_per_second"
    return None


def hallucination_reason(text: str, duration: float, config: HallucinationConfig) -> str | None:
    """The first hallucination rule that `text` breaks, or None when it passes them all."""
    tokens = words(text)
    if not tokens:
        return "empty_text"
    return (
        repeated_ngrams(tokens, config)
        or long_word(tokens, config)
        or impossible_rate(text, tokens, duration, config)
    )
