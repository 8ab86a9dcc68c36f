"""The average of the last N checkpoints, as FAMA starts stage 2 and builds its final model.

Floating-point tensors are averaged; integer ones (BatchNorm's `num_batches_tracked`) are
taken from the newest checkpoint, since an average count means nothing. Lightning
checkpoints hold pickled Python (hyper-parameters), so they are loaded with
`weights_only=False`: only ever average checkpoints this run wrote. They are memory-mapped,
so only the model weights are read, not the optimizer state beside them (twice their size).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch

_STEP = re.compile(r"step(\d+)\.ckpt$")


def step_checkpoints(folder: Path) -> list[Path]:
    """The numbered checkpoints of a stage (`stepNNNNNNN.ckpt`), oldest first."""
    found = [(int(m.group(1)), p) for p in folder.glob("step*.ckpt") if (m := _STEP.search(p.name))]
    return [p for _, p in sorted(found)]


def average_checkpoints(paths: list[Path]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the model weights in `paths` (newest last)."""
    if not paths:
        raise ValueError("no checkpoints to average")
    total: dict[str, torch.Tensor] = {}
    for path in paths:
        state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)["state_dict"]
        for name, tensor in state.items():
            if not tensor.is_floating_point():
                total[name] = tensor.clone()
            elif name in total:
                total[name] += tensor.double()
            else:
                total[name] = tensor.double()
    return {
        name: (t / len(paths)).float() if t.is_floating_point() else t for name, t in total.items()
    }


def average_last(folder: Path, count: int) -> tuple[dict[str, torch.Tensor], list[Path]]:
    paths = step_checkpoints(folder)[-count:]
    return average_checkpoints(paths), paths


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names and values: equal digests, equal weights."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
