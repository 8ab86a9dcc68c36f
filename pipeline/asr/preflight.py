"""What an ASR model setting needs from this machine, checked before the first stage runs.

A mistyped model path would otherwise reach the hub client as a repo id and fail with its
error, and `device: cuda` on a machine without a GPU would fail inside the first shard of pass
1: both after standardise and segment have run over the whole corpus.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.asr import require_backend
from pipeline.asr.shared import AsrModelConfig
from pipeline.stage import StageConfigError

_CUDA = re.compile(r"cuda(?::(\d+))?")


def looks_local(model: str) -> bool:
    """A model named as a path (`/m`, `./m`, `~/m`, `runs/a/model.nemo`), not as a hub id
    (`org/name`) or a name the backend knows (`whisper-base`, `large-v3`)."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or model.endswith(".nemo")


def cuda_devices(backend: str) -> int:
    """CUDA devices the backend's runtime sees (CTranslate2's for faster-whisper, torch's else)."""
    if backend == "faster-whisper":
        import ctranslate2

        return ctranslate2.get_cuda_device_count()
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_model(config: AsrModelConfig, where: str) -> None:
    """Raise StageConfigError, naming the setting at `where`, when `config` cannot load here:
    its backend's extra is missing, its local model is not there, or its GPU is not."""
    require_backend(config.backend)
    path = Path(config.model).expanduser()
    if looks_local(config.model) and not path.exists():
        raise StageConfigError(
            f"{where}.model: {config.model} does not exist (a local model path; "
            "a hub id reads org/name)"
        )
    if config.backend == "faster-whisper" and path.is_dir() and not (path / "model.bin").is_file():
        raise StageConfigError(
            f"{where}.model: {config.model} is not a CTranslate2 model folder (no model.bin)"
        )
    wanted = _CUDA.fullmatch(config.device)
    if wanted:
        index, count = int(wanted.group(1) or 0), cuda_devices(config.backend)
        if index >= count:
            seen = f"{count} CUDA GPU{'s' * (count != 1)}" if count else "no CUDA GPU"
            raise StageConfigError(
                f"{where}.device: {config.device}, but this machine has {seen}; "
                "use device: cpu (or auto)"
            )
