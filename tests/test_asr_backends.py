"""The GPU backends around their model calls: prompts, language ID, timestamps, NeMo outputs,
and the one-line error when an extra is missing. The engines themselves are stand-ins here
(no GPU on CI); they run for real only where a GPU is lent."""

from __future__ import annotations

import importlib.machinery
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.asr import MissingExtraError, TimedText, load_backend
from pipeline.asr.nemo_backend import hypothesis_from_nemo
from pipeline.asr.vllm_backend import language_distribution

VOCABULARY = {"<|endoftext|>": 50, "<|startoftranscript|>": 51, "<|en|>": 52, "<|it|>": 53,
              "<|transcribe|>": 54, "<|notimestamps|>": 55, "<|0.00|>": 100}  # fmt: skip
WORDS = {1: "hello", 2: "world", 3: "again"}


class FakeTokenizer:
    def get_vocab(self):
        return VOCABULARY

    def decode(self, ids):
        return " ".join(WORDS[i] for i in ids)


class FakeLLM:
    """Answers every request with canned token ids and records what it was asked."""

    def __init__(self, **options):
        self.options, self.requests = options, []

    def get_tokenizer(self):
        return FakeTokenizer()

    def generate(self, requests, params, use_tqdm=True):
        self.requests += requests
        self.params = params
        if params.max_tokens == 1:
            step = {52: SimpleNamespace(logprob=-0.1), 53: SimpleNamespace(logprob=-2.5),
                    7: SimpleNamespace(logprob=-0.05)}  # fmt: skip
            answer = SimpleNamespace(token_ids=[52], cumulative_logprob=-0.1, logprobs=[step])
        else:
            ids = [100, 1, 2, 100 + 75, 100 + 80, 3, 100 + 150, 50]
            answer = SimpleNamespace(token_ids=ids, cumulative_logprob=-1.6, logprobs=None)
        return [SimpleNamespace(outputs=[answer]) for _ in requests]


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    module.LLM = FakeLLM
    module.SamplingParams = lambda **kw: SimpleNamespace(**kw)
    monkeypatch.setitem(sys.modules, "vllm", module)


def test_vllm_forces_the_language_and_parses_timestamps(fake_vllm):
    backend = load_backend("vllm", model="openai/whisper-large-v3", batch_size=4, cpu_threads=2)
    audio = np.zeros(16_000 * 4, np.float32)
    (hypothesis,) = backend.transcribe([audio], ["it"], timestamps=True)
    (request,) = backend.llm.requests
    assert request["decoder_prompt"] == "<|startoftranscript|><|it|><|transcribe|>"
    assert request["encoder_prompt"]["multi_modal_data"]["audio"][1] == 16_000
    assert hypothesis.text == "hello world again"
    assert hypothesis.segments == (TimedText(0.0, 1.5, "hello world"), TimedText(1.6, 3.0, "again"))
    assert hypothesis.avg_logprob == pytest.approx(-0.2)
    backend.transcribe([audio], ["en"])
    assert backend.llm.requests[-1]["decoder_prompt"].endswith("<|notimestamps|>")


def test_vllm_language_id_is_a_distribution_over_language_tokens(fake_vllm):
    backend = load_backend("vllm", model="openai/whisper-large-v3")
    (distribution,) = backend.language_probabilities([np.zeros(16_000, np.float32)])
    assert set(distribution) == {"en", "it"}  # token 7 is not a language
    assert sum(distribution.values()) == pytest.approx(1.0)
    assert distribution["en"] > 0.9
    assert set(backend.llm.params.allowed_token_ids) == {52, 53}


def test_language_distribution_ignores_other_tokens():
    assert language_distribution({9: -0.1}, {52: "en"}) == {}
    assert language_distribution({52: -1.0, 53: -1.0}, {52: "en", 53: "it"}) == {
        "en": pytest.approx(0.5),
        "it": pytest.approx(0.5),
    }


def test_nemo_outputs_become_hypotheses_with_segments_and_words():
    output = SimpleNamespace(
        text=" Hello world. ",
        score=-3.0,
        y_sequence=[1, 2, 3],
        timestamp={
            "segment": [{"segment": "Hello world.", "start": 0.24, "end": 1.6}],
            "word": [
                {"word": "Hello", "start": 0.24, "end": 0.7},
                {"word": "world.", "start": 0.8, "end": 1.6},
            ],
        },
    )
    hypothesis = hypothesis_from_nemo(output)
    assert hypothesis.text == "Hello world."
    assert hypothesis.segments == (TimedText(0.24, 1.6, "Hello world."),)
    assert [w.text for w in hypothesis.words] == ["Hello", "world."]
    assert hypothesis.avg_logprob == pytest.approx(-1.0)
    assert hypothesis_from_nemo("plain text ").text == "plain text"


class FakeNemoModel:
    def __init__(self):
        self.calls = []

    def transcribe(self, audio, batch_size, timestamps, verbose, **options):
        self.calls.append(options)
        lang = options.get("source_lang", "?")
        return [SimpleNamespace(text=f"{lang}:{len(a)}", timestamp=None) for a in audio]


def test_nemo_multitask_models_are_asked_per_language(monkeypatch):
    from pipeline.asr.nemo_backend import NemoBackend

    backend = NemoBackend.__new__(NemoBackend)
    backend.model, backend.multitask, backend.batch_size = FakeNemoModel(), True, 8
    audios = [np.zeros(n, np.float32) for n in (10, 20, 30)]
    texts = [h.text for h in backend.transcribe(audios, ["en", "it", "en"])]
    assert texts == ["en:10", "it:20", "en:30"]  # back in input order
    assert {c["source_lang"] for c in backend.model.calls} == {"en", "it"}
    assert all(c["source_lang"] == c["target_lang"] for c in backend.model.calls)
    with pytest.raises(NotImplementedError):
        backend.language_probabilities(audios)


@pytest.mark.parametrize(("backend", "module", "extra"), [("vllm", "vllm", "vllm"),
                                                          ("nemo", "nemo", "nemo")])  # fmt: skip
def test_a_missing_extra_is_one_line_naming_it(monkeypatch, backend, module, extra):
    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setitem(sys.modules, f"{module}.collections.asr.models", None)
    with pytest.raises(MissingExtraError) as error:
        load_backend(backend, model="some/model")
    message = str(error.value)
    assert "\n" not in message and f"vaglio[{extra}]" in message


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(ValueError, match="faster-whisper, vllm, nemo"):
        load_backend("whisper.cpp", model="x")


def test_nemo_backend_runs_a_real_tiny_conformer_ctc(tmp_path):
    """Where `nemo_toolkit` is installed (`pip install 'vaglio[nemo]'`): a tiny Conformer-CTC
    with random weights, saved as .nemo and loaded through the backend, transcribes arrays."""
    pytest.importorskip("nemo.collections.asr")
    from nemo.collections.asr.models import EncDecCTCModel
    from omegaconf import OmegaConf

    labels = list(" abcdefghijklmnopqrstuvwxyz'")
    config = {
        "sample_rate": 16_000,
        "labels": labels,
        "train_ds": None,
        "validation_ds": None,
        "test_ds": None,
        "optim": None,
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": 16_000,
            "window_size": 0.025,
            "window_stride": 0.01,
            "features": 80,
            "n_fft": 512,
            "dither": 0.0,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": 80,
            "n_layers": 2,
            "d_model": 64,
            "n_heads": 4,
            "subsampling": "striding",
            "subsampling_factor": 4,
            "subsampling_conv_channels": 32,
            "ff_expansion_factor": 2,
            "conv_kernel_size": 9,
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
            "feat_in": 64,
            "num_classes": len(labels),
            "vocabulary": labels,
        },
    }
    path = tmp_path / "tiny.nemo"
    EncDecCTCModel(cfg=OmegaConf.create(config)).save_to(str(path))
    backend = load_backend("nemo", model=str(path), device="cpu", batch_size=2, beam_size=5)
    rng = np.random.default_rng(0)
    audios = [0.1 * rng.standard_normal(16_000 * s).astype(np.float32) for s in (1, 2, 3)]
    hypotheses = backend.transcribe(audios, ["en"] * 3, timestamps=True)
    assert len(hypotheses) == 3
    assert all(set(h.text) <= set(labels) for h in hypotheses)
    assert all(h.avg_logprob is not None and h.avg_logprob < 0 for h in hypotheses)
