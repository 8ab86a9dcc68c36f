"""Readers that turn a catalog entry into the recordings it lists, one module per kind."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pipeline.sources.base import SourceItem, SourceReadError
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
    """Every item the source lists, in a stable order; keys repeated are quarantined."""
    seen: set[str] = set()
    for item in _READERS[source.kind](source):
        if item.key in seen:
            item = SourceItem(f"{item.key}#{len(seen)}", problem=f"listed twice: {item.key}")
        seen.add(item.key)
        yield item


__all__ = ["SourceItem", "SourceReadError", "read_source"]
