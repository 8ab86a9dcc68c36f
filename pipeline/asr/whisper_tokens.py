"""Whisper's token conventions, shared by every backend that runs a Whisper model."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

from pipeline.asr.base import TimedText

TIMESTAMP_STEP_S = 0.02  # one timestamp token per 20 ms
LANGUAGE_TOKEN = re.compile(r"^<\|([a-z]{2,3})\|>$")  # <|en|>, <|haw|>; other specials are longer


def decoder_prompt(language: str, timestamps: bool) -> str:
    """The decoder prompt that forces `language` and transcription (not translation)."""
    prompt = f"<|startoftranscript|><|{language}|><|transcribe|>"
    return prompt if timestamps else prompt + "<|notimestamps|>"


def timed_phrases(
    tokens: list[int], timestamp_begin: int, decode: Callable[[list[int]], str], duration: float
) -> tuple[TimedText, ...]:
    """Whisper's `<|t0|> text <|t1|>` pairs as phrases; an unclosed last one ends at `duration`.

    Tokens below `timestamp_begin` are text (special tokens are already removed). Times past
    the audio's end (Whisper sees it padded) are cut to `duration`; a phrase that starts
    there is text the model made up after the audio ended, and is left out.
    """
    phrases: list[TimedText] = []
    opened: float | None = None
    text: list[int] = []
    for token in tokens:
        if token < timestamp_begin:
            text.append(token)
            continue
        time = (token - timestamp_begin) * TIMESTAMP_STEP_S
        if opened is not None and text:
            phrases.append(TimedText(opened, time, decode(text).strip()))
            text, opened = [], None
        else:
            opened = time
    if text:
        phrases.append(TimedText(opened or 0.0, max(duration, opened or 0.0), decode(text).strip()))
    return tuple(
        TimedText(p.start, min(p.end, duration), p.text)
        for p in phrases
        if p.text and p.start < duration
    )


# Languages Whisper writes without spaces between words: each character is a word there.
UNSPACED_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue"})


def _characters(tokens: list[int], decode: Callable[[list[int]], str]) -> list[tuple[int, str]]:
    """Runs of tokens that decode to whole characters (a byte-level token may hold part of
    one), as (index of the run's last token, its text)."""
    runs: list[tuple[int, str]] = []
    begin = 0
    for end in range(1, len(tokens) + 1):
        text = decode(tokens[begin:end])
        if "\ufffd" not in text or end == len(tokens):
            runs.append((end - 1, text))
            begin = end
    return runs


def _is_punctuation(text: str) -> bool:
    return all(unicodedata.category(c)[0] in "PSZ" for c in text)


def timed_words(
    tokens: list[int], starts: Sequence[float], decode: Callable[[list[int]], str], language: str
) -> tuple[TimedText, ...]:
    """The words of a decoded text, timed from where each of its tokens starts.

    `starts` holds one time per token and one more, where the text ends. A word runs from its
    first token's start to the start of the token after its last letter: punctuation joins
    the word before it (or, after a space, the word after it) but adds no time, since Whisper's
    alignment lets a full stop soak up the pause that follows it.
    """
    words: list[list] = []  # [start, end, text]
    leading = ""  # punctuation after a space, waiting for its word
    previous = -1
    for last, text in _characters(tokens, decode):
        first, previous = previous + 1, last
        if _is_punctuation(text):
            if words and not (text[:1].isspace() and last + 1 < len(tokens)):
                words[-1][2] += text.strip()
            else:
                leading += text.strip()
            continue
        if words and not leading and not text[:1].isspace() and language not in UNSPACED_LANGUAGES:
            words[-1][1] = starts[last + 1]
            words[-1][2] += text
        else:
            words.append([starts[first], starts[last + 1], leading + text.strip()])
            leading = ""
    if words:
        words[-1][2] += leading
    return tuple(TimedText(float(a), float(b), text.strip()) for a, b, text in words)
