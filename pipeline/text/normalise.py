"""Text normalisation for comparing transcripts, in the manner of Whisper's basic normaliser.

Word error rates are only comparable when both sides are normalised the same way: lower case,
no bracketed asides ("[music]", "(laughs)"), punctuation and symbols turned into spaces,
whitespace collapsed. Letters with diacritics are kept: in Italian "è" and "e" are different
words.
"""

from __future__ import annotations

import re
import unicodedata

_BRACKETED = re.compile(r"[<\[][^>\]]*[>\]]|\([^)]*\)")
_SPACES = re.compile(r"\s+")


def _symbol_to_space(char: str) -> str:
    return " " if unicodedata.category(char)[0] in "PS" else char


def normalise_text(text: str) -> str:
    """Lower-cased words separated by single spaces, without punctuation or symbols."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _BRACKETED.sub(" ", text)
    text = "".join(_symbol_to_space(c) for c in text)
    return _SPACES.sub(" ", text).strip()
