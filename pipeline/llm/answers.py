"""What chat models wrap around an answer, removed before the answer is checked.

Only wrappers are removed: a reasoning block, a leading "Here is the corrected text:", a code
fence, quotes around the whole answer, a leading target-language label, end-of-turn tokens
leaked by a server. Anything after the answer (a note, an added sentence) stays, so that the
guards see it and refuse the answer.
"""

from __future__ import annotations

import re

_THINKING = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)
_SPECIAL_TOKEN = re.compile(r"<\|[^|>]*\|>|</s>|<end_of_turn>")
_FENCE = re.compile(r"^```[\w-]*\n?(.*?)\n?```$", re.DOTALL)
_NOUN = (
    r"(?:text|transcript|transcription|translation|version"
    r"|traduzione|traduction|übersetzung|traducción)"
)
_PREAMBLE = re.compile(  # the noun is required, so "Okay, the result is this:" is left alone
    rf"^(?:(?:sure|certainly|of course|okay|ok)\b[!,.]?\s*)?"
    rf"(?:(?:here is|here's|below is|this is|ecco|voici|hier ist|aquí está)\b[^\n:]{{0,60}}"
    rf"|(?:the )?(?:corrected|punctuated|restored|edited|final)\s)?{_NOUN}\b[^\n:]{{0,40}}:\s*",
    re.IGNORECASE,
)
_QUOTES = {'"': '"', "'": "'", "“": "”", "„": "“", "«": "»", "‘": "’", "「": "」"}


def _unquote(text: str) -> str:
    if len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
        inner = text[1:-1].strip()
        if not any(q in inner for q in (text[0], text[-1])):  # not two quoted parts
            return inner
    return text


def clean_answer(answer: str, label: str | None = None) -> str:
    """The answer without its wrappers, on one line. `label` (a language name) is removed
    where the answer starts with it, as a model continuing "Italian: " may repeat it."""
    text = _THINKING.sub("", answer)
    text = _SPECIAL_TOKEN.split(text, maxsplit=1)[0].strip()
    for _ in range(2):  # "Sure! Here is the text:" then a fence or quotes
        text = _PREAMBLE.sub("", text).strip()
        if match := _FENCE.match(text):
            text = match.group(1).strip()
        if label:
            text = re.sub(rf"^(?:[\w ]{{0,24}} )?{re.escape(label)}\s*[:：]\s*", "", text)
        text = _unquote(text.strip())
    return " ".join(text.split())
