"""Statements written as SPDX licence expressions, read with their structure.

"(MIT AND CC-BY-NC-4.0) OR CC0-1.0" lets the user pick CC0; read word by word it would be
three licences applying together. So a statement written as an expression is parsed by
`license-expression` (the SPDX grammar: AND, OR, WITH, parentheses): a malformed one
("MIT OR OR Apache-2.0", "((((MIT") is refused with the parser's reason instead of being
repaired by guesswork. Each term between operators is still read by the prose layer
(normalize.py), so "CC BY 4.0 OR MIT" has the same structure as "CC-BY-4.0 OR MIT".

A statement counts as an expression when it uses an operator in capitals, or when every
term in it is an SPDX id as written ("CC-PDDC", "((((MIT"); anything else ("Creative
Commons Attribution 4.0 International (CC BY 4.0)") is prose, read by normalize.py alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from license_expression import (
    ExpressionError,
    LicenseSymbol,
    LicenseWithExceptionSymbol,
    Licensing,
    get_spdx_licensing,
)

from licenses.normalize import read_license


@dataclass(frozen=True)
class Licence:
    """One licence (an SPDX id, a `LicenseRef-` category, or "id WITH exception")."""

    spdx_id: str


@dataclass(frozen=True)
class Combined:
    """Licences that apply together ("AND") or among which the user picks one ("OR")."""

    operator: str
    parts: tuple[Licence | Combined, ...]


Node = Licence | Combined


class MalformedExpression(ValueError):
    """A statement written as an SPDX expression that does not parse; the message says why."""


def spdx(node: Node) -> str:
    """The node as an SPDX expression, parenthesised where the grammar needs it."""
    if isinstance(node, Licence):
        return node.spdx_id
    return f" {node.operator} ".join(
        f"({spdx(part)})" if isinstance(part, Combined) else spdx(part) for part in node.parts
    )


# Operators in capitals, standing alone between spaces or parentheses; and the parentheses.
_SYNTAX = re.compile(r"(\(|\)|(?<![^\s(])(?:AND|OR|WITH)(?![^\s)]))")
_LICENSE_REF = re.compile(r"(?:DocumentRef-[\w.\-]+:)?LicenseRef-[\w.\-]+")


@cache
def _spdx_ids() -> dict:
    return get_spdx_licensing().known_symbols_lowercase


def _spdx_id(term: str) -> str | None:
    """The SPDX id (or LicenseRef) `term` is, as written, or None."""
    if _LICENSE_REF.fullmatch(term):
        return term
    symbol = _spdx_ids().get(term.lower())
    return None if symbol is None else symbol.key


def _prose(term: str) -> Node | None:
    """What the prose layer reads in `term`, when it reads every word of it."""
    reading = read_license(term)
    if reading.unread or reading.unresolved or not reading.ids:
        return None
    if len(reading.ids) == 1:
        return Licence(reading.ids[0])
    return Combined(reading.operator, tuple(Licence(i) for i in reading.ids))


def _tree(parsed: object, terms: list[Node]) -> Node:
    """license-expression's parse of the placeholder skeleton, with the terms put back."""
    if isinstance(parsed, LicenseWithExceptionSymbol):
        licence = _tree(parsed.license_symbol, terms)
        exception = _tree(parsed.exception_symbol, terms)
        if not (isinstance(licence, Licence) and isinstance(exception, Licence)):
            raise MalformedExpression("WITH joins one licence and one exception")
        return Licence(f"{licence.spdx_id} WITH {exception.spdx_id}")
    if isinstance(parsed, LicenseSymbol):
        return terms[int(parsed.key[1:])]
    operator = "AND" if parsed.operator.strip() == "AND" else "OR"
    return Combined(operator, tuple(_tree(arg, terms) for arg in parsed.args))


def parse_expression(text: str) -> Node | None:
    """The statement's structure when it is written as an SPDX expression, else None (prose).
    Raises MalformedExpression when it is written as one but does not parse."""
    pieces = _SYNTAX.split(text)
    words = [p.strip() for p in pieces[::2]]
    syntax = pieces[1::2]
    as_written = [_spdx_id(w) for w in words if re.search(r"\w", w)]
    if not any(s not in "()" for s in syntax) and not (as_written and all(as_written)):
        return None
    terms: list[Node] = []
    skeleton = []
    for word, delimiter in zip(words, [*syntax, ""]):
        if re.search(r"\w", word):
            term = _prose(word) or (Licence(i) if (i := _spdx_id(word)) else None)
            if term is None:
                return None  # a term nobody can read: the prose layer says which words
            skeleton.append(f"L{len(terms)}")
            terms.append(term)
        skeleton.append(delimiter)
    try:
        parsed = Licensing().parse(" ".join(skeleton))
    except ExpressionError as error:
        reason = re.sub(r" for token: .*", "", str(error))
        raise MalformedExpression(f"not a valid SPDX licence expression: {reason}") from None
    if parsed is None:
        return None
    return _tree(parsed, terms)
