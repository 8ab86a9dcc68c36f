"""Readers that turn a catalog entry into the recordings it lists, one module per kind."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

from pipeline.sources.base import SourceItem, SourceReadError, declared_problem
from pipeline.sources.catalog import Source
from pipeline.sources.commonvoice import read_commonvoice
from pipeline.sources.hf import read_hf
from pipeline.sources.lhotse import read_lhotse
from pipeline.sources.local import read_local
from pipeline.sources.nemo import read_nemo

_READERS: dict[str, Callable[[Source], Iterator[SourceItem]]] = {
    "local": read_local,
    "nemo": read_nemo,
    "lhotse": read_lhotse,
    "commonvoice": read_commonvoice,
    "hf": read_hf,
    "metadata": lambda source: iter(()),  # nothing downloaded: the catalog gives its hours
}


def read_source(source: Source) -> Iterator[SourceItem]:
    """Every item the source lists, in a stable order. Keys repeated, names that are not
    UTF-8, and times that the file's header contradicts are quarantined with the reason."""
    seen: set[str] = set()
    for item in _READERS[source.kind](source):
        item = _unicode_checked(item)
        if item.key in seen:
            problem = item.problem or f"listed twice: {item.key}"
            item = SourceItem(f"{item.key}#{len(seen)}", problem=problem)
        elif item.problem is None and (problem := declared_problem(item)):
            item = replace(item, problem=problem)
        seen.add(item.key)
        yield item


def _lossless(text: str) -> str:
    """A name with undecodable bytes, written so that every byte shows (b'\\xff' as \\xff)."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape, not from a file name
        return text.encode("utf-8", "backslashreplace").decode()
    return raw.decode("utf-8", "backslashreplace")


def _is_unicode(text: object) -> bool:
    if not isinstance(text, str):
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unicode_checked(item: SourceItem) -> SourceItem:
    """The item, or a quarantined one when its name or a field is not valid Unicode (file
    names are bytes on Linux; Arrow stores only UTF-8)."""
    if not _is_unicode(item.key) or not _is_unicode(None if item.path is None else str(item.path)):
        key = _lossless(item.key)
        return SourceItem(key, problem=f"file name is not UTF-8: {key}")
    fields = {"text": item.text, "language": item.language, "license": item.license}
    broken = [name for name, value in fields.items() if not _is_unicode(value)]
    if broken:
        problem = f"bad manifest row: {', '.join(broken)} is not valid Unicode"
        return SourceItem(item.key, problem=problem)
    if not _is_unicode(item.problem):  # a reason that quotes a name written in bytes
        return replace(item, problem=_lossless(item.problem))
    return item


__all__ = ["SourceItem", "SourceReadError", "read_source"]
