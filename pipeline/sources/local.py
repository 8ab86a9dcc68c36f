"""`kind: local` — a folder of audio files; the file's path under the folder is its key."""

from __future__ import annotations

from collections.abc import Iterator

from pipeline.sources.base import SourceItem
from pipeline.sources.catalog import Source

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm")


def read_local(source: Source) -> Iterator[SourceItem]:
    """Every audio file under the folder, sorted so shards are stable across runs."""
    files = sorted(
        p for p in source.path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
    )
    for path in files:
        yield SourceItem(key=path.relative_to(source.path).as_posix(), path=path)
