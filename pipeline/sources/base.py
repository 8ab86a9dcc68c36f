"""What every source reader yields: one item per recording (or window of one), undecoded."""

from __future__ import annotations

import errno
import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.audio.decode import header_seconds
from pipeline.text.languages import language_code


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


MAX_SECONDS = 7 * 24 * 3600.0  # longer than any recording: a declared time beyond it is a typo
_TOLERANCE_S = 0.5  # declared durations may round the file's; beyond this (or 10 %) is wrong


def resolve_inside(root: Path, written: str) -> tuple[Path | None, str | None]:
    """(path, None) for an existing file under `root`, else (None, why not).

    Manifests are data, not trusted code: a path (or a link) that leaves the source folder
    is refused rather than read, and a link that leads nowhere says so; a path no file
    system can hold (a NUL, a lone surrogate) is refused before any system call sees it.
    """
    if "\0" in written:
        return None, f"bad manifest row: NUL character in path {written!r}"
    try:
        os.fsencode(written)
    except UnicodeEncodeError:
        return None, f"bad manifest row: path is not valid Unicode: {written!r}"
    candidate = Path(written).expanduser()
    if not candidate.is_absolute():
        candidate = root / candidate
    try:
        resolved = candidate.resolve(strict=False)
    except (OSError, RuntimeError):
        return None, f"symlink loop: {written}"
    if not resolved.is_relative_to(root.resolve()):
        if Path(os.path.normpath(candidate.absolute())).is_relative_to(root.absolute()):
            return None, f"link leaves the source folder: {written} -> {resolved}"
        return None, f"path outside the source folder: {written}"
    if not resolved.is_file():
        if candidate.is_symlink() or resolved != candidate.absolute():
            return None, link_problem(candidate, written)
        return None, f"missing file: {written}"
    return resolved, None


def key_under(root: Path, written: str) -> str:
    """A path as a manifest writes it, as the key of its file: relative to the source root,
    normalised ("./test/a.wav" and "<root>/test/a.wav" are both "test/a.wav"), so that
    per-split licence globs and the check for files listed twice see one name per file."""
    path = Path(os.path.normpath(written))
    if not path.is_absolute():
        return path.as_posix()
    for base in (root.absolute(), root.resolve()):
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    return written


def link_problem(link: Path, written: str) -> str:
    """Why a symbolic link (or a path through one) cannot be read."""
    try:
        link.resolve(strict=True)
    except RuntimeError:
        return f"symlink loop: {written}"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return f"symlink loop: {written}"
        return f"dangling link: {written}"
    return f"not a file: {written}"


def seconds(value: object, name: str, positive: bool = False) -> tuple[float | None, str | None]:
    """A manifest's time field as finite seconds in range, or the reason it is unusable."""
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"bad manifest row: {name} is not a number of seconds: {_quoted(value)}"
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return None, f"bad manifest row: {name} out of range: {_quoted(value)} s"
    if not math.isfinite(number):
        return None, f"bad manifest row: {name} is not a number of seconds: {value!r}"
    if number < 0 or (positive and number == 0) or number > MAX_SECONDS:
        return None, f"bad manifest row: {name} out of range: {_quoted(value)} s"
    return number, None


def _quoted(value: object, limit: int = 40) -> str:
    """A value as a reason quotes it, cut short: a manifest may hold a 5000-digit number."""
    huge = isinstance(value, int) and value.bit_length() > 128  # repr refuses past 4300 digits
    shown = "a number of over 38 digits" if huge else repr(value)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def stated_license(value: object) -> tuple[str | None, str | None]:
    """(statement, None) for the licence a manifest row states, (None, None) when it states
    none, (None, why) when it is not text: a NeMo `{"id": …}` or a Lhotse list could name a
    closed licence, so it is never replaced by the source's."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    if not isinstance(value, str):
        return None, f"bad manifest row: license is not text: {_quoted(value, 80)}"
    return value, None


def stated_language(value: object) -> tuple[str | None, str | None]:
    """(ISO 639 code, None) for the language a manifest states, (None, why) for one that names
    no language, (None, None) when it states none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    code = language_code(value) if isinstance(value, str) else None
    if code is None:
        return None, f"bad manifest row: unknown language {_quoted(value)}"
    return code, None


def _header_seconds(path: Path) -> float | None:
    """Read once per file version: a manifest may list hundreds of windows of one recording."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return _header_seconds_of(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _header_seconds_of(path: Path, size: int, mtime_ns: int) -> float | None:
    return header_seconds(path)


def declared_problem(item: SourceItem) -> str | None:
    """Why the times an item declares do not fit its file's header, or None when they fit (or
    the header cannot tell; decoding will then)."""
    if item.path is None or (item.offset is None and item.duration is None):
        return None
    measured = _header_seconds(item.path)
    if not measured:
        return None
    tolerance = max(_TOLERANCE_S, 0.1 * measured)
    if item.offset is None:
        if abs(item.duration - measured) > tolerance:
            return f"declared duration {item.duration:.2f} s, but the file holds {measured:.2f} s"
        return None
    length = item.duration or 0.0
    if item.offset + length > measured + _TOLERANCE_S:
        window = f"{item.offset:.2f}+{length:.2f} s"
        return f"window beyond the end: {window} of a {measured:.2f} s file"
    return None
