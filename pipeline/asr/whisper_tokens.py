"""Whisper's token conventions, shared by every backend that runs a Whisper model."""

from __future__ import annotations

import re
from collections.abc import Callable

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
