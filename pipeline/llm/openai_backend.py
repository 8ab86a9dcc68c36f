"""Any OpenAI-compatible chat server: `vllm serve`, llama.cpp's `llama-server`, a hosted API.

Requests go out from a thread pool, `concurrency` at a time, so a vLLM server sees enough of
them at once to batch. A request that fails in a way that may pass (connection refused or
reset, a timeout, 429, 5xx) is retried with exponential backoff; a 4xx other than 429 is our
mistake and fails at once. The API key is read from the environment variable the config
names, sent as a bearer token, and never written into a message or a log.

A conversation's output constraint goes out in the field the config's `decoding` names: a GBNF
`grammar` (llama.cpp's server), `structured_outputs: {regex}` (vLLM 0.12 and later) or
`guided_regex` (older vLLM). Its token budget is the request's `max_tokens`: an upper bound on
a held answer, and a cap besides the config's on a free one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from pipeline.llm.base import (
    Conversation,
    LlmConfig,
    LlmRequestError,
    OutputConstraint,
    without_system_role,
)

log = logging.getLogger(__name__)
MAX_RETRY_AFTER_S = 60.0  # a server's Retry-After is honoured up to this


class _Retryable(Exception):
    """One failed attempt that another attempt may fix; `wait_s` is what the server asked."""

    def __init__(self, problem: str, wait_s: float = 0.0):
        super().__init__(problem)
        self.wait_s = wait_s


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(float(response.headers.get("retry-after", 0)), MAX_RETRY_AFTER_S)
    except ValueError:  # an HTTP date: rare enough to fall back on our own backoff
        return 0.0


def _excerpt(response: httpx.Response) -> str:
    return " ".join(response.text.split())[:200]


class OpenAiBackend:
    name = "openai"

    def __init__(self, config: LlmConfig):
        self.config = config
        self.model_id = config.model
        self.constrains = config.constrains
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        headers = {}
        if config.api_key_env is not None:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise ValueError(
                    f"llm.api_key_env: the environment variable {config.api_key_env} is not set"
                )
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            headers=headers,
            timeout=config.timeout_s,
            limits=httpx.Limits(max_connections=config.concurrency),
        )

    def complete(
        self,
        conversations: Sequence[Conversation],
        constraints: Sequence[OutputConstraint | None] | None = None,
    ) -> list[str]:
        constraints = constraints or [None] * len(conversations)
        pool = ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="llm")
        try:
            return list(pool.map(self._complete_one, conversations, constraints))
        finally:  # after a failure, requests not yet sent are not sent
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._client.close()

    def request_body(
        self, conversation: Conversation, constraint: OutputConstraint | None = None
    ) -> dict:
        """The JSON body of one chat completion request."""
        if not self.config.system_role:
            conversation = without_system_role(conversation)
        body = {
            "model": self.config.model,
            "messages": conversation,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
        }
        if constraint is None:
            return body
        # A held answer fits its budget by construction, a lower cap would cut words off;
        # a free one is capped by both.
        budget = constraint.max_tokens
        body["max_tokens"] = budget if self.constrains else min(self.config.max_tokens, budget)
        decoding = self.config.decoding
        if decoding == "gbnf":
            body["grammar"] = constraint.gbnf
        elif decoding == "structured_outputs":
            body["structured_outputs"] = {"regex": constraint.regex}
        elif decoding == "guided_regex":
            body["guided_regex"] = constraint.regex
        return body

    def _complete_one(
        self, conversation: Conversation, constraint: OutputConstraint | None = None
    ) -> str:
        body = self.request_body(conversation, constraint)
        failure: _Retryable | None = None
        for attempt in range(self.config.max_retries + 1):
            if failure is not None:
                wait = max(self.config.backoff_s * 2 ** (attempt - 1), failure.wait_s)
                log.warning("%s: %s; retrying in %.1f s", self.url, failure, wait)
                time.sleep(wait)
            try:
                return self._post(body)
            except _Retryable as error:
                failure = error
        raise LlmRequestError(
            f"{self.url}: no answer after {self.config.max_retries + 1} attempt(s); last: {failure}"
        )

    def _post(self, body: dict) -> str:
        try:
            response = self._client.post(self.url, json=body)
        except httpx.TimeoutException:
            raise _Retryable(f"no answer within {self.config.timeout_s:g} s") from None
        except httpx.TransportError as error:
            raise _Retryable(f"connection failed ({type(error).__name__}: {error})") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}: {_excerpt(response)}", _retry_after(response))
        if status >= 400:
            raise LlmRequestError(f"{self.url}: HTTP {status} (not retried): {_excerpt(response)}")
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise LlmRequestError(
                f"{self.url}: not a chat completion (HTTP {status}): {_excerpt(response)}"
            ) from None
        return content or ""
