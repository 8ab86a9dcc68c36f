"""Constrained punctuation: what a model may answer when asked to punctuate one row.

A punctuation model that may write anything sometimes rewrites a word, and a guard that
checks afterwards can only throw the answer away. Here the decoder is held to a grammar built
for the row: its own words, in order, each as written or with its first letter capitalised
(after an elision apostrophe too, where the language has them: "l'Italia"), with optional
marks between them and a sentence mark at the end. A mark that ends a sentence makes the next
word start with a capital, and so does the start of the row, where the language writes
sentences that way: a model's sentence always starts with a capital, and what a small model
still gets wrong is where its sentences end. Inside a sentence a word may be capitalised too
(names: which words are names, only the model knows), and no mark may follow a word that
leans on the next one (an article; an Italian "a" or "della"), which no sentence or clause ends
on. Which marks a language uses, and which words lean, is data:
`pipeline/data/punctuation.yaml`.

The same constraint is written twice: as GBNF for llama.cpp servers (a `grammar` per request)
and as a regular expression for vLLM's structured outputs. Its token budget is an upper bound:
every token the grammar lets through writes at least one character, so an answer can never be
cut short by `max_tokens`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from pipeline.llm.base import OutputConstraint


@dataclass(frozen=True)
class PunctuationRules:
    pauses: tuple[str, ...]
    stops: tuple[str, ...]
    openers: tuple[str, ...]
    elisions: tuple[str, ...]
    sentence_case: bool
    spaced: frozenset[str]
    leaning: frozenset[str]  # lower case; words that lean on the next one: no mark after them

    def written(self, mark: str) -> str:
        """The mark as it follows a word: with a space before it where the language says."""
        return f" {mark}" if mark in self.spaced else mark

    @property
    def strippable(self) -> str:
        """Characters trimmed from the ends of an input word: they are the model's to choose."""
        return "".join({*self.pauses, *self.stops, *self.openers, "…"})


@cache
def punctuation_rules(language: str) -> PunctuationRules:
    """The rules for `language`: the defaults of punctuation.yaml, with its own entries."""
    data = yaml.safe_load(
        (resources.files("pipeline") / "data" / "punctuation.yaml").read_text(encoding="utf-8")
    )
    entry = {**data["default"], **data["languages"].get(language, {})}
    return PunctuationRules(
        pauses=tuple(entry["pauses"]),
        stops=tuple(entry["stops"]),
        openers=tuple(entry["openers"]),
        elisions=tuple(entry["elisions"]),
        sentence_case=bool(entry["sentence_case"]),
        spaced=frozenset(entry["spaced"]),
        leaning=frozenset(word.lower() for word in entry["leaning"]),
    )


def row_words(text: str, rules: PunctuationRules) -> list[str]:
    """The words of a row, without the marks around them (a re-punctuated row had some)."""
    words = (token.strip(rules.strippable) for token in text.split())
    return [word for word in words if word]


def _capitalised(part: str) -> str:
    """`part` with its first character upper case, where that is one character."""
    upper = part[:1].upper()
    return upper + part[1:] if len(upper) == 1 else part


@dataclass(frozen=True)
class WordForms:
    anywhere: tuple[str, ...]  # inside a sentence: as written, or capitalised
    sentence_start: tuple[str, ...]  # after a stop or at the start: capitalised


def word_forms(word: str, rules: PunctuationRules) -> WordForms:
    """How `word` may be written. Each part after an elision apostrophe may be capitalised
    on its own; nothing else of the word can change."""
    parts = [word]
    for apostrophe in rules.elisions:
        parts = [piece for part in parts for piece in _split_after(part, apostrophe)]
    first, rest = parts[0], parts[1:]
    tails = ["".join(p) for p in itertools.product(*[(r, _capitalised(r)) for r in rest])]
    starts = (_capitalised(first),) if rules.sentence_case else (first, _capitalised(first))
    anywhere = _unique(h + t for h in (first, _capitalised(first)) for t in tails)
    return WordForms(anywhere, _unique(h + t for h in starts for t in tails))


def _split_after(word: str, apostrophe: str) -> list[str]:
    """ "l'italia" -> ["l'", "italia"]: the apostrophe stays with what comes before it."""
    pieces = word.split(apostrophe)
    return [p + apostrophe for p in pieces[:-1]] + [pieces[-1]] if pieces[-1] else [word]


def _unique(forms) -> tuple[str, ...]:
    return tuple(dict.fromkeys(forms))


def _gbnf_literal(text: str) -> str:
    escaped = []
    for char in text:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\x{ord(char):02X}")
        else:
            escaped.append(char)  # GBNF reads UTF-8: any other character stands for itself
    return '"' + "".join(escaped) + '"'


_REGEX_SPECIAL = set("\\.^$*+?{}[]()|/-")


def _regex_literal(text: str) -> str:
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in text)


def _gbnf_choice(options: Sequence[str]) -> str:
    return "(" + " | ".join(_gbnf_literal(o) for o in options) + ")"


def _regex_choice(options: Sequence[str]) -> str:
    return "(?:" + "|".join(_regex_literal(o) for o in options) + ")"


def pnc_constraint(text: str, language: str) -> OutputConstraint | None:
    """The constraint for punctuating `text` (in `language`); None for a row without words."""
    rules = punctuation_rules(language)
    words = row_words(text, rules)
    if not words:
        return None
    forms = [word_forms(word, rules) for word in words]
    # a gap may hold a mark unless the word before it leans on the next (and so may the end)
    marked = [i > 0 and words[i - 1].lower() not in rules.leaning for i in range(len(words) + 1)]
    pauses = [rules.written(m) for m in rules.pauses]
    stops = [rules.written(m) for m in rules.stops]
    openers = list(rules.openers)
    gbnf = [
        "root ::= " + " ".join(f"g{i}" for i in range(len(words))) + " end",
        f"end ::= {_gbnf_choice(stops)}?" if marked[-1] else 'end ::= ""',
        f"pause ::= {_gbnf_choice(pauses)}",
        f"stop ::= {_gbnf_choice(stops)}",
        f"open ::= {_gbnf_choice(openers)}?" if openers else 'open ::= ""',
    ]
    regex_pause, regex_stop = _regex_choice(pauses), _regex_choice(stops)
    regex_open = _regex_choice(openers) + "?" if openers else ""
    regex = []
    for i, word in enumerate(forms):
        anywhere, start = _regex_choice(word.anywhere), _regex_choice(word.sentence_start)
        if i == 0:
            gbnf += [f"s0 ::= {_gbnf_choice(word.sentence_start)}", "g0 ::= open s0"]
            regex.append(regex_open + start)
            continue
        gbnf.append(f"w{i} ::= {_gbnf_choice(word.anywhere)}")
        if marked[i]:
            gbnf.append(f"s{i} ::= {_gbnf_choice(word.sentence_start)}")
            gbnf.append(f'g{i} ::= pause? " " w{i} | stop " " open s{i}')
            regex.append(f"(?:{regex_pause}? {anywhere}|{regex_stop} {regex_open}{start})")
        else:
            gbnf.append(f'g{i} ::= " " w{i}')
            regex.append(f" {anywhere}")
    regex.append(regex_stop + "?" if marked[-1] else "")
    longest = max(map(len, [*pauses, *stops])) + max(map(len, openers), default=0)
    characters = sum(max(map(len, f.anywhere + f.sentence_start)) for f in forms)
    characters += len(words) * (longest + 1)  # a gap's mark and space, or the final mark
    return OutputConstraint("\n".join(gbnf) + "\n", "".join(regex), characters + 1)  # + EOS
