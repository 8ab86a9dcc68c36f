"""Constrained punctuation: the model is held to the row's own words, so no answer can change
one. The grammar is checked as a language (what it lets through, what it refuses), as the
request each backend sends, and with the real SmolLM2 model on llama.cpp's server, where the
word guard must never fire."""

from __future__ import annotations

import importlib.machinery
import json
import re
import sys
import types

import pytest
from llm_server import CannedLlmServer
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.llm import LlmConfig, load_backend
from pipeline.llm.conversations import pnc_conversation
from pipeline.text.normalise import normalise_text
from pipeline.text.pnc import REJECTED
from pipeline.text.pnc_grammar import pnc_constraint

# (language, row as a CTC model writes it, a punctuation the grammar must allow)
ALLOWED = [
    (
        "en",
        "well i think we should go are you coming",
        "Well, I think we should go. Are you coming?",
    ),
    ("en", "we bought apples pears and bread", "We bought apples, pears and bread."),
    ("it", "l'italia è bella dove vivi tu", "L'Italia è bella. Dove vivi tu?"),
    ("fr", "bonjour à tous vous êtes prêts", "Bonjour à tous, vous êtes prêts ?"),
    ("es", "hola a todos qué sabéis de madrid", "Hola a todos. ¿Qué sabéis de Madrid?"),
    ("en", 'he said "hi" c:\\temp ß 東京 🙂', 'He said "hi": c:\\temp ß 東京 🙂.'),
]
# Answers that change the words, their order or more than a first letter: all refused.
REFUSED = [
    ("en", "well i think we should go", "Well, I think we must go."),
    ("en", "well i think we should go", "Well, I think we should go. Thank you."),
    ("en", "well i think we should go", "I think well we should go."),
    ("en", "we met the bbc", "We met the BBC."),
    ("en", "we met the bbc", "we met the bbc."),  # a sentence starts with a capital
    ("it", "siamo a roma", "Siamo a Roma!!"),
]


def held(language: str, row: str, answer: str) -> bool:
    return re.fullmatch(pnc_constraint(row, language).regex, answer) is not None


@pytest.mark.parametrize(("language", "row", "answer"), ALLOWED)
def test_the_grammar_allows_punctuation_and_capitals_of_the_rows_own_words(language, row, answer):
    assert held(language, row, answer)
    constraint = pnc_constraint(row, language)
    assert constraint.max_tokens > len(answer)  # every token writes a character: never cut


@pytest.mark.parametrize(("language", "row", "answer"), REFUSED)
def test_the_grammar_refuses_any_other_word_order_or_casing(language, row, answer):
    assert not held(language, row, answer)


@pytest.mark.parametrize(("language", "row", "_"), ALLOWED)
def test_llama_cpp_parses_every_grammar_quotes_backslashes_and_unicode_included(language, row, _):
    llama_cpp = pytest.importorskip("llama_cpp")
    grammar = llama_cpp.LlamaGrammar.from_string(pnc_constraint(row, language).gbnf, verbose=False)
    assert grammar is not None


def test_marks_already_in_a_row_are_the_models_to_choose_again():
    assert held("en", "Hello, world. How are you?", "Hello world: How are you!")
    assert pnc_constraint(" ... ", "en") is None  # no words: nothing to ask


@pytest.mark.parametrize(
    ("decoding", "field"),
    [("gbnf", "grammar"), ("structured_outputs", "structured_outputs"),
     ("guided_regex", "guided_regex"), ("off", None)],
)  # fmt: skip
def test_each_server_kind_gets_the_constraint_in_its_own_field(tmp_path, decoding, field):
    """The vLLM server is not installable here: its requests are checked as payloads."""
    row = "we met in rome"
    with CannedLlmServer([], tmp_path) as server:
        config = LlmConfig(backend="openai", model="m", base_url=server.base_url,
                           guided_decoding=decoding, max_tokens=5)  # fmt: skip
        load_backend(config).complete([pnc_conversation(row, "en")], [pnc_constraint(row, "en")])
        body = server.stats()["last_body"]
    sent = {"grammar", "structured_outputs", "guided_regex"} & set(body)
    assert sent == ({field} if field else set())
    if field == "grammar":
        assert body["grammar"] == pnc_constraint(row, "en").gbnf
        assert body["max_tokens"] == pnc_constraint(row, "en").max_tokens  # not cut at 5
    else:
        regex = body.get("structured_outputs", {}).get("regex") or body.get("guided_regex")
        assert field is None or re.fullmatch(regex, "We met in Rome.")
    if field is None:
        assert body["max_tokens"] == 5  # free: the config's cap, the tighter one


@pytest.mark.parametrize("api", ["StructuredOutputsParams", "GuidedDecodingParams"])
def test_in_process_vllm_holds_each_conversation_to_its_regex(monkeypatch, api):
    """vLLM's API as a stub, in both its spellings (0.12 and later, and before)."""
    seen = []

    class LLM:
        def __init__(self, **options):
            pass

        def chat(self, conversations, sampling_params, use_tqdm):
            seen.extend(sampling_params)
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text="x")])] * 2

    vllm = types.ModuleType("vllm")
    vllm.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    vllm.LLM, vllm.SamplingParams = LLM, lambda **kw: kw
    params = types.ModuleType("vllm.sampling_params")
    setattr(params, api, lambda **kw: (api, kw))
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", params)
    backend = load_backend(LlmConfig(backend="vllm", model="m"))
    constraint = pnc_constraint("we met in rome", "en")
    backend.complete([pnc_conversation("a b", "en")] * 2, [constraint, None])
    key = "structured_outputs" if api == "StructuredOutputsParams" else "guided_decoding"
    assert seen[0][key] == (api, {"regex": constraint.regex})
    assert seen[0]["max_tokens"] == constraint.max_tokens
    assert key not in seen[1]  # a conversation without a constraint is free


def run_llm_text(rows: list[str], *options: str):
    result = CliRunner().invoke(app, ["llm-text", *options], input="\n".join(rows) + "\n")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return lines, " ".join(result.stderr.split())


ENGLISH = [
    "well i think we should go home now are you coming with us",
    "my sister anna lives in london and works for the bbc",
    'he said "wait for me" and then he left',
    "we bought apples pears bananas and a loaf of bread",
]
ITALIAN = [
    "l'italia è un paese bellissimo dove vivi tu",
    "buongiorno a tutti oggi parliamo di roma e della sua storia",
    "abbiamo comprato mele pere e pane vuoi venire con noi",
]


@pytest.mark.numerics
def test_the_real_model_keeps_every_word_and_the_guard_never_fires():
    """SmolLM2-135M on llama.cpp's server, held by the grammar: every row is accepted with
    its own words, on any CPU, whatever punctuation the model chose."""
    for language, rows in (("en", ENGLISH), ("it", ITALIAN)):
        lines, said = run_llm_text(rows, "--local", "--lang", language)
        assert [line["outcome"] for line in lines] == ["accepted"] * len(rows), lines
        assert all(normalise_text(ln["output"]) == normalise_text(ln["input"]) for ln in lines)
        assert all(ln["output"][0].isupper() for ln in lines)  # the grammar starts a sentence
        assert "decoding: constrained (gbnf)" in said


@pytest.mark.numerics
def test_free_generation_is_guarded_and_says_so():
    lines, said = run_llm_text(ENGLISH, "--local", "--lang", "en", "--decoding", "off")
    assert {line["outcome"] for line in lines} <= {"accepted", *REJECTED}
    assert all(ln["output"] == ln["input"] for ln in lines if ln["outcome"] != "accepted")
    assert "decoding: free, then the word guard" in said


def test_llm_text_refuses_what_it_cannot_run(tmp_path):
    result = CliRunner().invoke(app, ["llm-text", "--stage", "translate", "--lang", "en"])
    assert result.exit_code == 2 and "needs --to" in result.stderr
    result = CliRunner().invoke(app, ["llm-text", "--lang", "en"], input="hello there\n")
    assert result.exit_code == 2 and "names no model" in result.stderr
