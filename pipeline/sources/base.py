"""What every source reader yields: one item per recording (or window of one), undecoded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class SourceReadError(Exception):
    """The source cannot be read at all (a manifest without its required columns, say); the
    run reports it and goes on with the other sources."""


@dataclass(frozen=True)
class SourceItem:
    """One recording that a source lists, with what the source says about it.

    An item that cannot be used carries a `problem` instead of being dropped, so the run
    quarantines it with that reason and the user sees every file the source listed.
    """

    key: str  # unique within the source; the recording id is "<source>/<key>"
    path: Path | None = None  # the audio file...
    audio: bytes | None = None  # ...or its encoded bytes, when a dataset holds them
    offset: float | None = None  # a window of the file: start in seconds...
    duration: float | None = None  # ...and length; without an offset, the declared length
    language: str | None = None  # the file's own language, when the source states it
    text: str | None = None  # the source's own transcript, kept as `text_source`
    license: str | None = None  # the file's own licence statement, when it states one
    problem: str | None = None


def resolve_inside(root: Path, written: str) -> tuple[Path | None, str | None]:
    """(path, None) for an existing file under `root`, else (None, why not).

    Manifests are data, not trusted code: a path that climbs out of the source folder is
    refused rather than read.
    """
    candidate = Path(written).expanduser()
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not resolved.is_relative_to(root.resolve()):
        return None, f"path outside the source folder: {written}"
    if not resolved.is_file():
        return None, f"missing file: {written}"
    return resolved, None


def seconds(value: object, name: str) -> tuple[float | None, str | None]:
    """A manifest's time field as non-negative seconds, or the reason it is unusable."""
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None, f"bad manifest row: {name} is not a number of seconds: {value!r}"
    return float(value), None
