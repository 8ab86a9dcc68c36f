"""The interface every LLM backend implements: chat conversations in, completions out.

Stages (punctuation, translation) build one conversation per row and send a whole shard in
one `complete` call, so a backend can batch (vLLM) or send requests in parallel (a server).
The chat template belongs to the model: vLLM renders it in-process, an OpenAI-compatible
server renders it itself; stages never format prompts for a particular model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal, Protocol, get_args

from pydantic import Field

from pipeline.validation import Count, CountOrZero, NonNegative, PositiveSeconds, Seconds

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}
Conversation = list[Message]

Backend = Literal["vllm", "openai"]  # openai: any OpenAI-compatible server
BACKENDS = get_args(Backend)
# How a server is told what an answer may be: `gbnf` (llama.cpp's `grammar` field),
# `structured_outputs` (vLLM 0.12 and later), `guided_regex` (vLLM before 0.12), `off`.
GuidedDecoding = Literal["gbnf", "structured_outputs", "guided_regex", "off"]


class LlmRequestError(RuntimeError):
    """A server that did not answer usefully, after every retry that made sense."""


@dataclass(frozen=True)
class LlmConfig:
    """Which model answers, and how hard to push it. Fields that a backend cannot use are
    ignored by it: the server decides batching for `openai`; vLLM needs no URL."""

    backend: Backend = "vllm"
    # the reference; a hub id or local path
    model: Annotated[str, Field(pattern=r"\S")] = "utter-project/EuroLLM-9B-Instruct"
    max_tokens: Count = 512  # a 40 s utterance is ~150 tokens; room for a wordier translation
    temperature: NonNegative = 0.0  # greedy: the same input gives the same answer on a re-run
    system_role: bool = True  # False for chat templates without one (Gemma): merged into user
    # None: the backend's own way (in-process vLLM constrains; an OpenAI-compatible server of
    # unknown kind does not, so stages fall back to free generation and say so)
    guided_decoding: GuidedDecoding | None = None
    # openai
    base_url: Annotated[str, Field(pattern=r"^https?://")] = "http://127.0.0.1:8000/v1"
    # name of the variable holding the key; None: no key
    api_key_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    concurrency: Count = 16  # requests in flight; a vLLM server batches what it receives
    max_retries: CountOrZero = 4  # after the first attempt, on connection errors, timeouts, 5xx
    backoff_s: Seconds = 1.0  # waits 1, 2, 4, 8 s between attempts
    timeout_s: PositiveSeconds = 120.0  # per request
    # vllm
    batch_size: Count = 256  # sequences decoded at once (max_num_seqs)
    max_model_len: Count = 4096  # EuroLLM's context; caps the KV cache vLLM reserves
    gpu_memory_utilization: Annotated[float, Field(strict=True, gt=0, le=1)] = 0.85

    @property
    def tag(self) -> str:
        """What a row's `versions` map records about the model."""
        return f"{self.backend}:{self.model}"

    @property
    def decoding(self) -> GuidedDecoding:
        """How answers are constrained, with the default resolved for the backend. In-process
        vLLM uses whichever structured-output API its version has."""
        if self.guided_decoding is not None:
            return self.guided_decoding
        return "structured_outputs" if self.backend == "vllm" else "off"

    @property
    def constrains(self) -> bool:
        """Whether a constraint sent with a conversation holds the answer to it."""
        return self.decoding != "off"


@dataclass(frozen=True)
class OutputConstraint:
    """What one answer may be, in the two forms servers take, and a token budget that the
    longest answer it allows fits in."""

    gbnf: str  # a GBNF grammar whose `root` rule is the whole answer (llama.cpp)
    regex: str  # the same language as a regular expression (vLLM structured outputs)
    max_tokens: int


class LlmBackend(Protocol):
    """A loaded model or a connection to one; one instance per worker, reused for every shard."""

    name: str
    model_id: str
    constrains: bool  # whether constraints hold answers (else they only bound their length)

    def complete(
        self,
        conversations: Sequence[Conversation],
        constraints: Sequence[OutputConstraint | None] | None = None,
    ) -> list[str]:
        """The assistant's answer to each conversation, in order, each held to its constraint
        where one is given and the config's `decoding` is not `off` (else the constraint only
        bounds the answer's length). Raises rather than returns a partial list, so that a
        shard is either done or re-run."""
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
