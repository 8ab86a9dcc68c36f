"""LLM backends: the OpenAI-compatible client against a real server process on 127.0.0.1
(tests/llm_server.py), and the vLLM backend's contract where vLLM is missing or present."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import socket
import sys
import time
import types

import pytest
from llm_server import CannedLlmServer

from pipeline.config import ConfigError, build_config
from pipeline.llm import LlmBackend, LlmConfig, LlmRequestError, MissingExtraError, load_backend

CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}]


def ask(*texts: str) -> list[list[dict[str, str]]]:
    return [[CONVERSATION[0], {"role": "user", "content": t}] for t in texts]


def client(server: CannedLlmServer, **options) -> LlmBackend:
    options = {"backoff_s": 0.01, "timeout_s": 5.0, **options}
    return load_backend(
        LlmConfig(backend="openai", model="tiny", base_url=server.base_url, **options)
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("backend", "llama"),
        ("model", " "),
        ("base_url", "127.0.0.1:8000"),
        ("concurrency", 0),
        ("max_retries", -1),
        ("timeout_s", 0.0),
        ("api_key_env", "MY-KEY"),
        ("gpu_memory_utilization", 1.5),
    ],
)
def test_a_bad_setting_is_refused_with_the_field_named(field, value):
    with pytest.raises(ConfigError, match=rf"^my\.yaml: punctuate\.llm\.{field}: .*{value!r}"):
        build_config({"punctuate": {"llm": {field: value}}}, "my.yaml")


def test_answers_come_back_in_order_with_greedy_settings_sent(tmp_path):
    with CannedLlmServer([{"match": "capital", "answer": "Rome."}], tmp_path) as server:
        answers = client(server, max_tokens=64).complete(ask("the capital of italy", "hello there"))
        body = server.stats()["last_body"]
    assert answers == ["Rome.", "Hello there."]
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("tiny", 0.0, 64)
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_a_model_without_a_system_role_reads_the_system_text_in_the_user_turn(tmp_path):
    with CannedLlmServer([], tmp_path) as server:
        client(server, system_role=False).complete(ask("hello"))
        messages = server.stats()["last_body"]["messages"]
    assert messages == [{"role": "user", "content": "Be brief.\n\nhello"}]


@pytest.mark.parametrize("status", [500, 429, 503])
def test_transient_server_errors_are_retried_until_an_answer_comes(tmp_path, status):
    behaviours = [{"match": "flaky", "fail_first": 2, "fail_status": status, "answer": "Fine."}]
    with CannedLlmServer(behaviours, tmp_path) as server:
        answers = client(server, max_retries=2).complete(ask("flaky"))
        assert server.stats()["requests"] == 3
    assert answers == ["Fine."]


def test_exhausted_retries_name_the_url_and_the_last_status(tmp_path):
    with CannedLlmServer([{"match": "down", "status": 503}], tmp_path) as server:
        with pytest.raises(LlmRequestError) as error:
            client(server, max_retries=2).complete(ask("down"))
        assert server.stats()["requests"] == 3
    message = str(error.value)
    assert f"{server.base_url}/chat/completions" in message
    assert "3 attempt(s)" in message and "HTTP 503" in message


def test_a_request_the_server_refuses_is_not_retried(tmp_path):
    with CannedLlmServer([{"match": "bad", "status": 400}], tmp_path) as server:
        with pytest.raises(LlmRequestError, match=r"HTTP 400 \(not retried\)"):
            client(server, max_retries=3).complete(ask("bad"))
        assert server.stats()["requests"] == 1


def test_a_server_too_slow_for_the_timeout_gives_a_clear_error(tmp_path):
    with CannedLlmServer([{"match": "slow", "sleep_s": 3}], tmp_path) as server:
        started = time.monotonic()
        with pytest.raises(LlmRequestError, match=r"no answer within 0\.3 s") as error:
            client(server, timeout_s=0.3, max_retries=1).complete(ask("slow"))
        assert time.monotonic() - started < 2.5
    assert server.base_url in str(error.value) and "2 attempt(s)" in str(error.value)


def test_no_server_listening_gives_a_clear_error():
    with socket.socket() as probe:  # a port that was free a moment ago, now closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = LlmConfig(
        backend="openai", base_url=f"http://127.0.0.1:{port}/v1", max_retries=1, backoff_s=0.01
    )
    with pytest.raises(LlmRequestError, match=rf"127\.0\.0\.1:{port}.*connection failed"):
        load_backend(config).complete(ask("anyone there"))


@pytest.mark.parametrize("concurrency", [1, 4])
def test_requests_go_out_in_parallel_up_to_the_concurrency(tmp_path, concurrency):
    with CannedLlmServer([{"match": "", "sleep_s": 0.3}], tmp_path) as server:
        started = time.monotonic()
        answers = client(server, concurrency=concurrency).complete(ask(*"abcdefgh"))
        elapsed = time.monotonic() - started
        assert server.stats()["max_in_flight"] == concurrency
    assert answers == [f"{c.upper()}." for c in "abcdefgh"]
    assert elapsed < 8 * 0.3 / concurrency + 1.0


def test_the_api_key_comes_from_the_named_variable_and_never_shows(tmp_path, monkeypatch):
    monkeypatch.setenv("VAGLIO_TEST_LLM_KEY", "s3cret-key")
    with CannedLlmServer([], tmp_path, api_key="s3cret-key") as server:
        good = client(server, api_key_env="VAGLIO_TEST_LLM_KEY")
        assert good.complete(ask("hello")) == ["Hello."]
        monkeypatch.setenv("VAGLIO_TEST_LLM_KEY", "wrong-key")
        with pytest.raises(LlmRequestError, match="HTTP 401") as error:
            client(server, api_key_env="VAGLIO_TEST_LLM_KEY").complete(ask("hello"))
    assert "wrong-key" not in str(error.value)
    monkeypatch.delenv("VAGLIO_TEST_LLM_KEY")
    with pytest.raises(ValueError, match="VAGLIO_TEST_LLM_KEY is not set"):
        load_backend(LlmConfig(backend="openai", api_key_env="VAGLIO_TEST_LLM_KEY"))


def test_vllm_missing_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(MissingExtraError, match=r"'vllm' LLM backend needs 'vllm'.*vaglio\[vllm\]"):
        load_backend(LlmConfig(backend="vllm"))


def test_vllm_renders_each_conversation_with_the_chat_template_in_one_call(monkeypatch):
    """vLLM's API as a stub: the backend must hand every conversation to `LLM.chat` at once,
    greedy, and return the first output of each."""
    calls = []

    class LLM:
        def __init__(self, **options):
            calls.append(("init", options))

        def chat(self, conversations, sampling_params, use_tqdm):
            calls.append(("chat", conversations, sampling_params))
            texts = [f"answer {c[-1]['content']}" for c in conversations]
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=t)]) for t in texts]

    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    module.LLM, module.SamplingParams = LLM, lambda **kw: kw
    monkeypatch.setitem(sys.modules, "vllm", module)
    backend = load_backend(LlmConfig(backend="vllm", model="m", batch_size=32, max_tokens=99))
    assert backend.complete(ask("a", "b")) == ["answer a", "answer b"]
    assert calls[0][1]["model"] == "m" and calls[0][1]["max_num_seqs"] == 32
    assert calls[1][1] == ask("a", "b")
    assert calls[1][2] == [{"temperature": 0.0, "max_tokens": 99}] * 2


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("VAGLIO_TEST_LLM"), reason="set VAGLIO_TEST_LLM=model")
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed")
def test_vllm_answers_with_a_real_instruct_model():
    backend = load_backend(
        LlmConfig(
            backend="vllm",
            model=os.environ["VAGLIO_TEST_LLM"],
            max_tokens=16,
            gpu_memory_utilization=0.5,
        )
    )
    conversation = [{"role": "user", "content": "Answer with one word: the capital of France?"}]
    assert "paris" in backend.complete([conversation])[0].lower()
