"""Text language identification with langid.py, which ships its own model (no download)."""

from __future__ import annotations

from functools import cache


@cache
def _identifier():
    from langid.langid import LanguageIdentifier, model

    return LanguageIdentifier.from_modelstring(model, norm_probs=True)


def identify_language(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of the text's language."""
    lang, prob = _identifier().classify(text)
    return lang, float(prob)
