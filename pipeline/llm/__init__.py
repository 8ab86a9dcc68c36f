"""LLM backends behind one interface, chosen by name in the config, and the conversations
that punctuation restoration and translation send them.

Heavy imports happen only when a backend is built; `vllm` without its extra raises
`MissingExtraError`, one line naming what to install.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from importlib import resources

from pipeline.extras import MissingExtraError
from pipeline.llm.base import (
    BACKENDS,
    Conversation,
    LlmBackend,
    LlmConfig,
    LlmRequestError,
    Message,
)


def require_backend(config: LlmConfig) -> None:
    """Fail before any work starts when the backend's extra is not installed."""
    if config.backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise MissingExtraError("the 'vllm' LLM backend", "vllm", extra="vllm")


def load_backend(config: LlmConfig) -> LlmBackend:
    """The backend `config` names, loaded (vllm) or connected (openai)."""
    require_backend(config)
    if config.backend == "vllm":
        from pipeline.llm.vllm_backend import VllmChatBackend

        return VllmChatBackend(config)
    from pipeline.llm.openai_backend import OpenAiBackend

    return OpenAiBackend(config)


__all__ = [
    "BACKENDS",
    "Conversation",
    "LlmBackend",
    "LlmConfig",
    "LlmRequestError",
    "Message",
    "MissingExtraError",
    "load_backend",
    "loaded_backend",
    "prompt_digest",
    "require_backend",
]


_loaded: dict[LlmConfig, LlmBackend] = {}
_lock = threading.Lock()


def loaded_backend(config: LlmConfig) -> LlmBackend:
    """The backend for `config`, built on first use and kept for the life of the process, so
    a worker loads a vLLM model (or opens a connection pool) once for all its shards."""
    with _lock:
        if config not in _loaded:
            _loaded[config] = load_backend(config)
        return _loaded[config]


def prompt_digest(name: str) -> str:
    """A checksum of a prompt file, so that editing a prompt re-runs the stage that uses it."""
    data = (resources.files("pipeline.llm") / "prompts" / name).read_bytes()
    return hashlib.sha256(data).hexdigest()
