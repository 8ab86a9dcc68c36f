"""ASR backends behind one interface, chosen by name in the config.

Heavy imports happen only when a backend is built; a GPU backend whose extra is missing
raises `MissingExtraError`, one line naming what to install.
"""

from __future__ import annotations

import importlib.util
from typing import Literal, get_args

from pipeline.asr.base import AsrBackend, Hypothesis, TimedText
from pipeline.extras import MissingExtraError

Backend = Literal["faster-whisper", "vllm", "nemo"]
BACKENDS = get_args(Backend)
_EXTRAS = {"vllm": ("vllm", "vllm"), "nemo": ("nemo", "nemo_toolkit")}  # -> (module, package)


def require_backend(name: str) -> None:
    """Fail before any work starts when a backend is unknown or its extra is not installed."""
    if name not in BACKENDS:
        raise ValueError(f"unknown ASR backend {name!r}; available: {', '.join(BACKENDS)}")
    if name in _EXTRAS and importlib.util.find_spec(_EXTRAS[name][0]) is None:
        raise MissingExtraError(f"the {name!r} ASR backend", _EXTRAS[name][1], extra=name)


def load_backend(name: str, **options) -> AsrBackend:
    """Build the backend `name` with the stage's model options.

    Every backend takes the same options (model, device, compute_type, cpu_threads,
    batch_size, beam_size, window_margin_s), so one per-stage config serves all three; each
    ignores what it cannot use: vllm ignores device, compute_type, cpu_threads, beam_size
    and window_margin_s (greedy decoding, batch_size caps concurrent sequences); nemo ignores
    compute_type, cpu_threads, beam_size and window_margin_s (the model's own decoding).
    """
    require_backend(name)
    if name == "faster-whisper":
        from pipeline.asr.faster_whisper_backend import FasterWhisperBackend

        return FasterWhisperBackend(**options)
    if name == "vllm":
        from pipeline.asr.vllm_backend import VllmWhisperBackend

        return VllmWhisperBackend(**options)
    from pipeline.asr.nemo_backend import NemoBackend

    return NemoBackend(**options)


__all__ = [
    "BACKENDS",
    "AsrBackend",
    "Backend",
    "Hypothesis",
    "MissingExtraError",
    "TimedText",
    "load_backend",
    "require_backend",
]
