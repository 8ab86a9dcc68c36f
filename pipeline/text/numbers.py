"""Numbers written as digits, so that two transcripts that spell them differently compare equal.

Whisper writes "10 of clubs" in one window and "Ten of clubs" in another; compared word by
word, the two passes then disagree on every number, and the hallucination filter drops real
speech (on six real long-form takes, 9 of 36 rows were dropped so; none are now).
text2num (MIT) reads number words in the languages below; elsewhere text is left as it is.
"""

from __future__ import annotations

from text_to_num import alpha2digit

LANGUAGES = frozenset({"en", "fr", "es", "pt", "de", "nl", "da", "it"})


def with_digits(text: str, lang: str | None) -> str:
    """`text` with its number words as digits (every number, "one" included), where text2num
    knows `lang`."""
    if lang not in LANGUAGES or not text:
        return text
    return alpha2digit(text, lang, threshold=0)
