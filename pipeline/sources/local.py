"""`kind: local` — a folder of audio files; the file's path under the folder is its key.

Links are followed only while they stay in the folder; one that loops, leads nowhere or
leaves the folder becomes a quarantined item saying so, rather than vanishing unseen.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipeline.sources.base import SourceItem, resolve_inside
from pipeline.sources.catalog import Source

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm")


def read_local(source: Source) -> Iterator[SourceItem]:
    """Every audio file under the folder, sorted so shards are stable across runs."""
    for path in sorted(source.path.rglob("*")):
        key = path.relative_to(source.path).as_posix()
        if path.is_symlink():
            yield from _linked(source.path, path, key)
        elif path.is_file() and _is_audio(path):
            yield SourceItem(key=key, path=path)


def _is_audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS


def _linked(root: Path, link: Path, key: str) -> Iterator[SourceItem]:
    """A link to an audio file in the folder is read; a broken or escaping link is reported;
    a link to a folder inside is skipped, its files being listed where they really are."""
    resolved, problem = resolve_inside(root, key)
    if problem is None and _is_audio(link):
        yield SourceItem(key=key, path=resolved)
    elif problem is not None and not problem.startswith("not a file"):
        yield SourceItem(key=key, problem=problem)
