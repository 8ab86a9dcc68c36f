"""What an export's consumer reads back: the proof that an export is right.

Each format's `check` reads its export with the consumer's own reader (NeMo's, Lhotse's) and
returns these entries; it raises `ExportError` where the reader would silently skip (an entry
without audio) or read from elsewhere (a path outside the export folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.export.rows import ExportError


@dataclass(frozen=True)
class Entry:
    segment_id: str
    taskname: str  # "asr" or "ast"
    text: str
    lang: str  # the language of `text`
    source_lang: str
    samples: np.ndarray  # float32, 16 kHz mono
    words: tuple[tuple[str, float, float], ...] = ()  # (word, start, end) in `samples`' time


def inside(folder: Path, audio_path: str, where: str, field: str = "audio_filepath") -> Path:
    """The file `audio_path` (named by `field`) names, relative to `folder`, which it must
    not leave."""
    root = folder.resolve()
    path = (folder / audio_path).resolve()
    if not path.is_relative_to(root):
        raise ExportError(f"{where}: {field} {audio_path!r} points outside {folder}")
    if not path.is_file():
        raise ExportError(f"{where}: {field} {audio_path!r}: no such file in {folder}")
    return path


def mono(audio: np.ndarray) -> np.ndarray:
    return np.asarray(audio, dtype=np.float32).reshape(-1)
