"""A real OpenAI-compatible chat server on the CPU, for the demo, the tests and the benchmark.

llama-cpp-python's server runs as a child process on 127.0.0.1 and a free port, serving an
offline model (`pipeline/llm/offline_model.py`) or any GGUF file; vaglio talks to it through
the ordinary `openai` backend, as it would to `llama-server` or `vllm serve` run by hand.
It is stopped by its process id when the `with` block ends, whatever happened inside it.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from pipeline.extras import MissingExtraError
from pipeline.llm.base import LlmConfig
from pipeline.llm.offline_model import DEFAULT_OFFLINE_LLM, OFFLINE_LLMS

HOST = "127.0.0.1"


class LocalServerError(RuntimeError):
    """The server process exited or did not answer in time; the message ends with its log."""


@dataclass(frozen=True)
class LocalServer:
    """A running server: where it listens and the model name it answers to."""

    pid: int
    port: int
    model: str

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def llm_config(self, **overrides: object) -> LlmConfig:
        """An `openai` backend config for this server. The server answers one request at a
        time, so two in flight keep it busy without queueing past the request timeout; it
        is llama.cpp's, so output constraints go to it as GBNF grammars."""
        config = LlmConfig(backend="openai", model=self.model, base_url=self.base_url)
        defaults = {"concurrency": 2, "max_tokens": 256, "guided_decoding": "gbnf"}
        return replace(config, **{**defaults, **overrides})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _log_tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _wait_until_ready(process: subprocess.Popen, port: int, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalServerError(
                f"the LLM server exited with code {process.returncode}:\n{_log_tail(log)}"
            )
        try:
            if httpx.get(f"http://{HOST}:{port}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise LocalServerError(f"the LLM server gave no answer in {timeout_s:.0f} s:\n{_log_tail(log)}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def local_server(
    model: str = DEFAULT_OFFLINE_LLM,
    model_path: Path | None = None,
    threads: int = 2,
    context_tokens: int = 2048,
    startup_timeout_s: float = 120.0,
) -> Iterator[LocalServer]:
    """Start llama-cpp-python's server on a free local port with the offline model `model`
    (a key of OFFLINE_LLMS), or with the GGUF file `model_path` served as `model`; wait
    until it answers, yield it, and stop it by process id."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise MissingExtraError("the local LLM server", "llama-cpp-python", extra="llm-cpu")
    if model_path is None:
        if model not in OFFLINE_LLMS:
            raise ValueError(f"no offline model {model!r}: known are {', '.join(OFFLINE_LLMS)}")
        try:
            model_path, model = OFFLINE_LLMS[model].path(), OFFLINE_LLMS[model].served_as
        except RuntimeError as error:  # not fetched yet, or a damaged download: one line
            raise LocalServerError(str(error)) from None
    port = _free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path), "--model_alias", model,
        "--host", HOST, "--port", str(port),
        "--n_ctx", str(context_tokens), "--n_threads", str(threads),
        "--n_threads_batch", str(threads),
        "--logits_all", "false",  # only the next token's logits are needed
        "--verbose", "false",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="vaglio-llm-") as folder:
        log = Path(folder) / "server.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Spinning OpenMP threads stall when the cores are shared: wait passively.
                env={"OMP_WAIT_POLICY": "passive", **os.environ, "PYTHONUNBUFFERED": "1"},
            )
        try:
            _wait_until_ready(process, port, log, startup_timeout_s)
            yield LocalServer(process.pid, port, model)
        finally:
            _stop(process)
