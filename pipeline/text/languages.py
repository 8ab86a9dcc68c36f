"""ISO 639 language codes: what a catalog may declare, checked against the standard's tables.

Two-letter (639-1) and three-letter (639-2/3) codes are accepted; a plausible-looking typo
such as "fu" is not, since a wrong code would put hours under a language nobody asked for.
"""

from __future__ import annotations

from functools import cache

MULTIPLE_LANGUAGES = "mul"  # ISO 639-2: hours given for several languages together


@cache
def _codes() -> frozenset[str]:
    import pycountry

    codes = set()
    for language in pycountry.languages:
        codes.update(
            code
            for code in (getattr(language, "alpha_2", None), getattr(language, "alpha_3", None))
            if code
        )
    return frozenset(codes | {MULTIPLE_LANGUAGES})


def is_language_code(code: str) -> bool:
    """True for a lower-case ISO 639-1/-2/-3 code such as 'en', 'it' or 'fra'."""
    return code in _codes()


def language_code(value: str) -> str | None:
    """A language as manifests write it ('en', 'eng', 'English', 'it-IT') as an ISO 639 code,
    or None when it names no language."""
    value = value.strip()
    code = value.lower().replace("_", "-").split("-")[0]
    if is_language_code(code):
        return code
    import pycountry

    try:
        found = pycountry.languages.lookup(value)
    except LookupError:
        return None
    return getattr(found, "alpha_2", None) or found.alpha_3
