"""ASR backends behind one interface, chosen by name in the config."""

from __future__ import annotations

from pipeline.asr.base import AsrBackend, Hypothesis

BACKENDS = ("faster-whisper",)


def load_backend(name: str, **options) -> AsrBackend:
    """Build the backend `name`; heavy imports happen only here, when a backend is chosen."""
    if name == "faster-whisper":
        from pipeline.asr.faster_whisper_backend import FasterWhisperBackend

        return FasterWhisperBackend(**options)
    raise ValueError(f"unknown ASR backend {name!r}; available: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "AsrBackend", "Hypothesis", "load_backend"]
