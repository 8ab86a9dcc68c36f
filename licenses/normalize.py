"""Read a free-text licence statement as a careful reader would.

Find every licence the statement names (aliases.yaml, plus the Creative Commons and GNU
grammars here), then decide whether they are alternatives at the user's choice ("A or B",
"dual licensed under A and B") or apply together ("A and B", "audio A, transcripts B",
"A, research use only"). Anything unclear counts as applying together, which can only make
a verdict stricter. Names that cover several licences ("CC BY" without a version, "BSD")
are never guessed: they stay unresolved and make the statement unknown.

Every word must be accounted for: a word that is neither part of a licence name, nor a pointer
to the licence text, nor harmless (harmless.yaml) may be a restriction no rule lists, so it
makes the statement unknown too, and the reading names it.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pipeline.strict_yaml import read_yaml

ALIASES = Path(__file__).with_name("aliases.yaml")
HARMLESS = Path(__file__).with_name("harmless.yaml")
# Unread words quoted in a reading, at most; the rest are counted.
_QUOTED_WORDS = 12
_QUOTED_CHARACTERS = 100

# A space in a pattern stands for this: any run of separators, or none ("cc-by", "ccby").
_SEP = r"[\s_\-:,]*"


def _words(pattern: str) -> str:
    return pattern.replace(" ", _SEP)


def _compile(pattern: str) -> re.Pattern[str]:
    """Match `pattern` (spaces as separators) as whole words only."""
    return re.compile(rf"(?<![a-z0-9])(?:{_words(pattern)})(?![a-z0-9])")


@dataclass(frozen=True)
class Mention:
    """One licence named in a statement, at text[start:end]."""

    start: int
    end: int
    spdx_id: str | None  # None: the name covers several licences (see `note`)
    note: str = ""
    yields_to: tuple[str, ...] = ()  # globs: dropped when the statement also names one of these


@dataclass(frozen=True)
class Reading:
    """The licences a statement names and how they combine."""

    ids: tuple[str, ...]
    operator: str  # "OR": the user picks one; "AND": all apply together
    unresolved: tuple[str, ...] = ()  # why a name could not be resolved to one licence
    unread: str = ""  # words beside the licences that no rule accounts for (quoted, cut short)

    @property
    def expression(self) -> str | None:
        """An SPDX licence expression ("MIT OR Apache-2.0"), or None if not fully resolved."""
        if self.unresolved or not self.ids:
            return None
        return f" {self.operator} ".join(self.ids)


@dataclass(frozen=True)
class _Alias:
    spdx_id: str | None
    patterns: tuple[re.Pattern[str], ...]
    note: str
    yields_to: tuple[str, ...]


@cache
def _aliases() -> tuple[tuple[_Alias, ...], frozenset[str]]:
    data = read_yaml(ALIASES)
    aliases = tuple(
        _Alias(
            entry["id"],
            tuple(_compile(p) for p in entry["patterns"]),
            entry.get("note", ""),
            tuple(entry.get("yields_to", ())),
        )
        for entry in data["aliases"]
    )
    return aliases, frozenset(data["cc_ported"])


def _alias_mentions(text: str) -> Iterator[Mention]:
    for alias in _aliases()[0]:
        for pattern in alias.patterns:
            for m in pattern.finditer(text):
                yield Mention(m.start(), m.end(), alias.spdx_id, alias.note, alias.yields_to)


# Creative Commons: clauses (BY, NC, ND, SA), a version, and for 3.0 and older a port.
_CC_CLAUSE = (
    r"(?:by|attribution|nc|non commercial|nd|no deriv(?:s|atives?)(?: works)?|sa|share alike)"
)
_CC_TAIL = (
    r"(?: (?:public )?license| licensed| version| ver\.?| international| unported| generic)*"
    r" v?(?P<version>[1-4](?:\.[0-5])?)(?![0-9])(?: (?P<port>[a-z]{2,3})(?![a-z0-9]))?"
)
_CC_NAMED = _compile(
    rf"(?:cc|creative commons)(?P<clauses>(?: {_CC_CLAUSE}(?![a-z0-9]))*)(?:{_CC_TAIL})?"
)
# "Attribution-ShareAlike 4.0 International", "BY-NC 4.0": no "CC", so a version is required.
_CC_BARE = _compile(
    rf"(?P<clauses>(?:attribution|by(?= {_CC_CLAUSE}))(?: {_CC_CLAUSE}(?![a-z0-9]))*){_CC_TAIL}"
)
_CC_DEED = re.compile(
    r"creativecommons\.org/licenses/(?P<clauses>[a-z-]+)/(?P<version>\d\.\d)"
    r"(?:/(?P<port>[a-z]{2,3})(?![a-z]))?"
)
_CC_VERSIONS = {"1.0", "2.0", "2.1", "2.5", "3.0", "4.0"}
_CC_CODES = {"by": "BY", "attribution": "BY", "nc": "NC", "noncommercial": "NC", "sa": "SA",
             "sharealike": "SA"}  # fmt: skip
_CC_RESTRICTIONS = {"NC": "LicenseRef-NonCommercial", "ND": "LicenseRef-NoDerivatives"}


def _cc_mention(m: re.Match[str]) -> Mention:
    tokens = re.findall(_words(_CC_CLAUSE), m["clauses"] or "")
    codes = {_CC_CODES.get(re.sub(r"[\W_]", "", t), "ND") for t in tokens}  # the rest: ND
    version = m["version"] if m["version"] is None or "." in m["version"] else m["version"] + ".0"
    if version in _CC_VERSIONS and codes and not {"ND", "SA"} <= codes:
        spdx_id = "-".join(["CC", *(c for c in ("BY", "NC", "ND", "SA") if c in codes | {"BY"})])
        spdx_id += f"-{version}"
        ported = f"{spdx_id}-{(m['port'] or '').upper()}"
        if ported in _aliases()[1]:
            return Mention(m.start(), m.end(), ported)
        # a word after the version that is no port ("CC BY 4.0 or MIT") is not part of it
        return Mention(m.start(), m.end("version") if m["port"] else m.end(), spdx_id)
    for code, category in _CC_RESTRICTIONS.items():
        if code in codes:  # refused whatever the version, so the version does not matter
            return Mention(m.start(), m.end(), category)
    if not codes:
        note = (
            "'Creative Commons' names a family of licences, from CC BY (open) to "
            "CC BY-NC-ND (not open): state the licence and its version"
        )
        return Mention(m.start(), m.end(), None, note, ("CC*", "LicenseRef-PublicDomain"))
    name = "-".join(["CC", *(c for c in ("BY", "SA") if c in codes | {"BY"})])
    note = (
        f"{name.replace('-', ' ', 1)} without a version: versions 1.0 to 4.0 differ in their "
        "terms; state the version (e.g. 4.0)"
    )
    return Mention(m.start(), m.end(), None, note, (f"{name}-[0-9]*",))


def _cc_mentions(text: str) -> Iterator[Mention]:
    for pattern in (_CC_NAMED, _CC_BARE, _CC_DEED):
        yield from (_cc_mention(m) for m in pattern.finditer(text))


# GNU licences: a family, a version, and "only" or "or later".
_GNU = _compile(
    r"(?:gnu )?(?:(?:(?P<word>lesser|library|affero) )?general public license"
    r"|(?P<fdl>free documentation license)|(?P<abbr>gpl|lgpl|agpl|gfdl|fdl))"
    r"(?:(?: license| version| ver\.?)* v?(?P<version>[1-3](?:\.[0-3])?)(?![0-9]))?"
    r"(?:(?P<later>\+| or (?:any )?later(?: version)?)| (?P<only>only))?"
)
_GNU_VERSIONS = {
    "GPL": ("1.0", "2.0", "3.0"),
    "LGPL": ("2.0", "2.1", "3.0"),
    "AGPL": ("3.0", "1.0"),  # the FSF's AGPL starts at 3.0; 1.0 was Affero's
    "GFDL": ("1.1", "1.2", "1.3"),
}


def _gnu_mention(m: re.Match[str]) -> Mention:
    word, abbr = m["word"], (m["abbr"] or "").upper()
    family = {"lesser": "LGPL", "library": "LGPL", "affero": "AGPL"}.get(word or "", "GPL")
    if m["fdl"] or abbr in ("GFDL", "FDL"):
        family = "GFDL"
    elif abbr:
        family = abbr
    version = m["version"]
    if version is None:
        # The GNU licences say themselves that a work naming no version may be used under any
        # version ever published: that is "the first version, or later", not a guess.
        return Mention(m.start(), m.end(), f"{family}-{_GNU_VERSIONS[family][0]}-or-later",
                       yields_to=(f"{family}-*",))  # fmt: skip
    version = version if "." in version else version + ".0"
    if version not in _GNU_VERSIONS[family]:
        return Mention(m.start(), m.end(), None, f"there is no {family} version {version}")
    return Mention(m.start(), m.end(), f"{family}-{version}-{'or-later' if m['later'] else 'only'}")


def _shown(text: str) -> str:
    """The statement with one kind of dash and single spaces, in its own case."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"[\u2010-\u2015\u2212]", "-", text)
    return re.sub(r"\s+", " ", text).strip()


def _clean(text: str) -> str:
    # licence, licenced -> license, licensed
    return re.sub(r"licenc", "licens", _shown(text).lower())


def _names(text: str) -> list[Mention]:
    """Every licence name and pointer in cleaned `text`; overlapping matches keep the longest."""
    found = [*_alias_mentions(text), *_cc_mentions(text), *map(_gnu_mention, _GNU.finditer(text))]
    found.sort(key=lambda m: (m.start - m.end, m.start))
    kept: list[Mention] = []
    for m in found:
        if m.end > m.start and all(m.end <= k.start or m.start >= k.end for k in kept):
            kept.append(m)
    return kept


def _unyielded(kept: list[Mention]) -> list[Mention]:
    """`kept` in order, less the names that yield to another licence named beside them."""
    ids = {m.spdx_id for m in kept} - {None}
    return sorted(
        (m for m in kept if not any(
            fnmatch.fnmatchcase(other, glob)
            for other in ids - {m.spdx_id} for glob in m.yields_to
        )),
        key=lambda m: m.start,
    )  # fmt: skip


def find_mentions(text: str) -> list[Mention]:
    """Licences named in `text`, in order, less those that yield to another one named."""
    return _unyielded(_names(_clean(text)))


# Words between two licences that neither join nor separate them.
_NEUTRAL = {
    "license", "licenses", "licensed", "under", "the", "a", "an", "its", "is", "are", "be",
    "also", "available", "released", "terms", "of", "version", "either", "at", "your", "users",
    "user's", "licensee's", "option", "choice", "discretion", "dual", "dually", ",", "/", "|",
}  # fmt: skip
_AND = {"and", "&", "+", ";"}
_CHOICE = re.compile(
    r"\bdual|\beither\b|\bat (?:your|the user's|the licensee's) (?:option|choice|discretion)"
    r"|\bchoose\b|\bwhichever\b"
)


def _gap_kind(gap: str) -> str:
    """'or', 'and', 'list' (commas, slashes) or 'qualified' (anything else: per split, for…)."""
    words = set(re.findall(r"[a-z']+|[,;/|+&]", gap.replace("and/or", "or"))) - _NEUTRAL
    if not words:
        return "list"
    if words == {"or"}:
        return "or"
    return "and" if words <= _AND else "qualified"


@dataclass(frozen=True)
class _Harmless:
    words: frozenset[str]  # anywhere
    labels: frozenset[str]  # only as "label: licence"
    address: re.Pattern[str]  # a web address where licence deeds live


@cache
def _harmless() -> _Harmless:
    data = read_yaml(HARMLESS)
    hosts = "|".join(re.escape(host) for host in data["hosts"])
    address = re.compile(rf"(?:https?://)?(?:www\.)?(?:{hosts})(?:/\S*)?")
    words = frozenset(data["words"])
    return _Harmless(words, words | frozenset(data["labels"]), address)


_WORD = re.compile(r"https?://\S+|[^\W_]+(?:['’.\-][^\W_]+)*")
_NUMBER = re.compile(r"v?\d+(?:[.\-]\d+)*[a-z]?")
# A name as datasets are written: a capital inside the word, or a digit ("LibriVox", "FLEURS",
# "Europarl-ST", "CoVoST2"); a plain word ("Prohibited") is no name.
_NAME = re.compile(r"(?=.*(?:[a-z]\.?[A-Z]|[A-Z]{2}|\d))[A-Za-z0-9.\-]+")
_CAMEL_CASE = re.compile(r"[A-Za-z]*[a-z][A-Z][A-Za-z]*")
# One word and a colon in front of a licence: a label ("VoxPopuli: CC0", "audio: CC BY 4.0").
_LABEL = re.compile(r"(?<![^\s;,(])(?P<word>[^\s:;,()]+): ?")


def _unread_words(text: str, names: list[Mention]) -> list[str]:
    """The words of `text` that are no licence name, pointer or harmless word, in order."""
    shown, cleaned = _shown(text), _clean(text)
    if len(shown) != len(cleaned):  # a letter whose lower case is longer: read it all lower
        shown = cleaned
    harmless = _harmless()
    starts = {m.start for m in names}
    spans = [(m.start, m.end) for m in names]
    spans += [(a.start(), a.end()) for a in harmless.address.finditer(cleaned)]
    spans += [
        (label.start(), label.end())
        for label in _LABEL.finditer(cleaned)
        if label.end() in starts
        and (
            label["word"] in harmless.labels
            or _NAME.fullmatch(shown[label.start() : label.end("word")])
        )
    ]
    rest = list(cleaned)  # what no name, pointer or label accounts for, blanked where they do
    for start, end in spans:
        rest[start:end] = " " * (end - start)
    unread = []
    for w in _WORD.finditer("".join(rest)):
        original = shown[w.start() : w.end()]
        if not (
            w[0] in harmless.words or _NUMBER.fullmatch(w[0]) or _CAMEL_CASE.fullmatch(original)
        ):
            unread.append(original)
    return unread


def _quote(words: list[str]) -> str:
    quoted = " ".join(words[:_QUOTED_WORDS])
    if len(quoted) > _QUOTED_CHARACTERS:
        quoted = quoted[: _QUOTED_CHARACTERS - 1] + "…"
    more = len(words) - _QUOTED_WORDS
    return f"'{quoted}'" + (f" and {more} more words" if more > 0 else "")


def read_license(text: str) -> Reading:
    """The licences `text` names, and whether they are alternatives or apply together."""
    cleaned = _clean(text)
    names = _names(cleaned)
    mentions = _unyielded(names)
    kinds = [
        _gap_kind(cleaned[a.end : b.start])
        for a, b in itertools.pairwise(mentions)
        if a.spdx_id != b.spdx_id or a.spdx_id is None
    ]
    either = "or" in kinds and set(kinds) <= {"or", "list"}
    dual = bool(_CHOICE.search(cleaned)) and set(kinds) <= {"or", "list", "and"}
    operator = "OR" if kinds and (either or dual) else "AND"
    ids = tuple(dict.fromkeys(m.spdx_id for m in mentions if m.spdx_id))
    notes = tuple(dict.fromkeys(m.note for m in mentions if m.spdx_id is None))
    if operator == "OR" and ids:
        notes = ()  # an alternative nobody can identify is simply not the one picked
    unread = _unread_words(text, names)
    return Reading(ids, operator, notes, _quote(unread) if unread else "")


def normalize_license(text: str) -> str | None:
    """The SPDX id (or `LicenseRef-…` category, or expression) `text` names; None if unknown,
    or if words beside it cannot be read."""
    reading = read_license(text)
    return None if reading.unread else reading.expression
