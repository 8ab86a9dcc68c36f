"""Pass 1 against pass 2, word by word, to show where the two ASR passes disagree.

Words are compared as the filter compares them (case and punctuation aside: `words`), and
shown as written, so a capital or a comma that pass 2 added is not marked as a difference.
"""

from __future__ import annotations

from difflib import SequenceMatcher

from pipeline.text.rules import words

Marked = list[tuple[str, bool]]  # (word as written, differs from the other pass)


def _key(token: str) -> str:
    return " ".join(words(token))


def word_diff(pass1: str, pass2: str) -> tuple[Marked, Marked]:
    """Each pass's words, each marked when the other pass does not have it at that place."""
    first, second = (pass1 or "").split(), (pass2 or "").split()
    matcher = SequenceMatcher(None, [_key(t) for t in first], [_key(t) for t in second],
                              autojunk=False)  # fmt: skip
    marked1: Marked = []
    marked2: Marked = []
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        marked1 += [(t, op != "equal") for t in first[a0:a1]]
        marked2 += [(t, op != "equal") for t in second[b0:b1]]
    return marked1, marked2
