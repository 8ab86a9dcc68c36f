"""The interface every LLM backend implements: chat conversations in, completions out.

Stages (punctuation, translation) build one conversation per row and send a whole shard in
one `complete` call, so a backend can batch (vLLM) or send requests in parallel (a server).
The chat template belongs to the model: vLLM renders it in-process, an OpenAI-compatible
server renders it itself; stages never format prompts for a particular model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}
Conversation = list[Message]

BACKENDS = ("vllm", "openai")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class LlmRequestError(RuntimeError):
    """A server that did not answer usefully, after every retry that made sense."""


@dataclass(frozen=True)
class LlmConfig:
    """Which model answers, and how hard to push it. Fields that a backend cannot use are
    ignored by it: the server decides batching for `openai`; vLLM needs no URL."""

    backend: str = "vllm"  # or openai: any OpenAI-compatible server
    model: str = "utter-project/EuroLLM-9B-Instruct"  # the reference; a hub id or local path
    max_tokens: int = 512  # a 40 s utterance is ~150 tokens; room for a wordier translation
    temperature: float = 0.0  # greedy: the same input gives the same answer on a re-run
    system_role: bool = True  # False for chat templates without one (Gemma): merged into user
    # openai
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str | None = None  # name of the variable holding the key; None: no key
    concurrency: int = 16  # requests in flight; a vLLM server batches what it receives
    max_retries: int = 4  # after the first attempt, on connection errors, timeouts, 429, 5xx
    backoff_s: float = 1.0  # waits 1, 2, 4, 8 s between attempts
    timeout_s: float = 120.0  # per request
    # vllm
    batch_size: int = 256  # sequences decoded at once (max_num_seqs)
    max_model_len: int = 4096  # EuroLLM's context; caps the KV cache vLLM reserves
    gpu_memory_utilization: float = 0.85

    def __post_init__(self) -> None:
        def bad(field: str, why: str) -> ValueError:
            return ValueError(f"llm.{field}: {why}, got {getattr(self, field)!r}")

        if self.backend not in BACKENDS:
            raise bad("backend", f"expected one of {', '.join(BACKENDS)}")
        if not self.model.strip():
            raise bad("model", "expected a hub id or a local path")
        if not self.base_url.startswith(("http://", "https://")):
            raise bad("base_url", "expected an http:// or https:// URL")
        if self.api_key_env is not None and not _ENV_NAME.fullmatch(self.api_key_env):
            raise bad("api_key_env", "expected the name of an environment variable")
        positive = ("max_tokens", "concurrency", "timeout_s", "batch_size", "max_model_len")
        for field in positive:
            if getattr(self, field) <= 0:
                raise bad(field, "expected a number above 0")
        for field in ("temperature", "max_retries", "backoff_s"):
            if getattr(self, field) < 0:
                raise bad(field, "expected a number of at least 0")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise bad("gpu_memory_utilization", "expected a share in (0, 1]")

    @property
    def tag(self) -> str:
        """What a row's `versions` map records about the model."""
        return f"{self.backend}:{self.model}"


class LlmBackend(Protocol):
    """A loaded model or a connection to one; one instance per worker, reused for every shard."""

    name: str
    model_id: str

    def complete(self, conversations: Sequence[Conversation]) -> list[str]:
        """The assistant's answer to each conversation, in order. Raises rather than returns a
        partial list, so that a shard is either done or re-run."""
        ...


def without_system_role(conversation: Conversation) -> Conversation:
    """The system text put before the first user message, for chat templates that refuse a
    system role (Gemma's raises); the model reads the same words."""
    system = "\n\n".join(m["content"] for m in conversation if m["role"] == "system")
    rest = [dict(m) for m in conversation if m["role"] != "system"]
    if not system:
        return rest
    if rest and rest[0]["role"] == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
    else:
        rest.insert(0, {"role": "user", "content": system})
    return rest
