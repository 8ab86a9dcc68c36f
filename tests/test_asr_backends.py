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
from pipeline.asr.word_timings import CANNOT_ALIGN

# Outcome depends on model numerics: CI runs these again under the other CTranslate2 backends.
pytestmark = pytest.mark.numerics

VOCABULARY = {"<|endoftext|>": 50, "<|startoftranscript|>": 51, "<|en|>": 52, "<|it|>": 53,
              "<|transcribe|>": 54, "<|notimestamps|>": 55}  # fmt: skip
TS = 56  # <|0.00|>: Whisper's timestamp tokens follow <|notimestamps|>, 20 ms apart
WORDS = {1: "hello", 2: "world", 3: "again"}


class FakeTokenizer:
    def get_vocab(self):
        return VOCABULARY

    def decode(self, ids):
        return " ".join(WORDS[i] for i in ids)


class FakeLLM:
    """Answers every request with canned token ids and records what it was asked. Like vLLM
    V1, it reports a cumulative log-probability only when log-probabilities are asked for."""

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
            ids = [TS, 1, 2, TS + 75, TS + 80, 3, TS + 150, 50]
            cumulative = None if params.logprobs is None else -1.6
            answer = SimpleNamespace(token_ids=ids, cumulative_logprob=cumulative, logprobs=None)
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


def test_vllm_without_timestamps_gives_text_and_score_but_no_segments(fake_vllm):
    backend = load_backend("vllm", model="openai/whisper-large-v3")
    (hypothesis,) = backend.transcribe([np.zeros(16_000 * 4, np.float32)], ["en"])
    (request,) = backend.llm.requests
    assert request["decoder_prompt"] == "<|startoftranscript|><|en|><|transcribe|><|notimestamps|>"
    assert hypothesis.text == "hello world again"
    assert hypothesis.segments == ()
    assert hypothesis.avg_logprob == pytest.approx(-0.2)
    assert hypothesis.words_missing is None
    (asked,) = backend.transcribe([np.zeros(16_000 * 4, np.float32)], ["en"], word_timings=True)
    assert (asked.text, asked.words, asked.words_missing) == (hypothesis.text, (), CANNOT_ALIGN)


def test_vllm_refuses_a_language_whisper_does_not_know(fake_vllm):
    backend = load_backend("vllm", model="openai/whisper-large-v3")
    with pytest.raises(ValueError, match="xx"):
        backend.transcribe([np.zeros(16_000, np.float32)] * 2, ["en", "xx"])
    assert backend.llm.requests == []  # nothing was decoded


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

    def transcribe(self, audio, batch_size, return_hypotheses, timestamps, verbose, **options):
        self.calls.append(options)
        lang = options.get("source_lang", "?")
        return [SimpleNamespace(text=f"{lang}:{len(a)}", timestamp=None) for a in audio]


class FakeCanary(FakeNemoModel):
    tokenizer = SimpleNamespace(
        special_tokens={"<|en|>": 4, "<|it|>": 5, "<|pnc|>": 6}, langs=["spl_tokens", "en", "it"]
    )


def test_nemo_multitask_models_are_asked_per_language(monkeypatch):
    from pipeline.asr.nemo_backend import NemoBackend

    backend = NemoBackend.__new__(NemoBackend)
    backend.model, backend.multitask, backend.batch_size = FakeCanary(), True, 8
    backend.model_id = "nvidia/canary-1b-flash"
    audios = [np.zeros(n, np.float32) for n in (10, 20, 30)]
    texts = [h.text for h in backend.transcribe(audios, ["en", "it", "en"])]
    assert texts == ["en:10", "it:20", "en:30"]  # back in input order
    assert {c["source_lang"] for c in backend.model.calls} == {"en", "it"}
    # transcription, not translation: same source and target, task asr
    assert all(c["source_lang"] == c["target_lang"] for c in backend.model.calls)
    assert all(c["task"] == "asr" for c in backend.model.calls)
    with pytest.raises(NotImplementedError):
        backend.language_probabilities(audios)


def test_nemo_canary_times_no_words_and_says_so():
    from pipeline.asr.nemo_backend import NemoBackend

    backend = NemoBackend.__new__(NemoBackend)
    backend.model, backend.multitask, backend.batch_size = FakeCanary(), True, 8
    hypotheses = backend.transcribe([np.zeros(10, np.float32)], ["en"], word_timings=True)
    assert [(h.words, h.words_missing) for h in hypotheses] == [((), CANNOT_ALIGN)]
    assert not any(c.get("timestamps") for c in backend.model.calls)


def test_nemo_canary_refuses_a_language_it_has_no_token_for():
    from pipeline.asr.nemo_backend import NemoBackend

    backend = NemoBackend.__new__(NemoBackend)
    backend.model, backend.multitask, backend.batch_size = FakeCanary(), True, 8
    backend.model_id = "nvidia/canary-1b-flash"
    with pytest.raises(ValueError, match=r"cannot transcribe \['pl'\]; it knows \['en', 'it'\]"):
        backend.transcribe([np.zeros(10, np.float32)] * 2, ["en", "pl"])
    assert backend.model.calls == []  # refused before decoding anything


def test_nemo_single_language_models_get_no_language_prompt():
    from pipeline.asr.nemo_backend import NemoBackend

    backend = NemoBackend.__new__(NemoBackend)
    backend.model, backend.multitask, backend.batch_size = FakeNemoModel(), False, 8
    texts = [h.text for h in backend.transcribe([np.zeros(5, np.float32)] * 2, ["en", "it"])]
    assert texts == ["?:5", "?:5"]
    assert backend.model.calls == [{}]  # one call, no source/target language


def test_nemo_spans_with_unknown_times_are_dropped():
    output = SimpleNamespace(
        text="a b",
        timestamp={"word": [{"word": "a", "start": -1, "end": -1},
                            {"word": "b", "start": 0.5, "end": 0.9}]},
    )  # fmt: skip
    assert hypothesis_from_nemo(output).words == (TimedText(0.5, 0.9, "b"),)


@pytest.mark.parametrize(("backend", "module", "extra"), [("vllm", "vllm", "vllm"),
                                                          ("nemo", "nemo", "nemo")])  # fmt: skip
def test_a_missing_extra_is_one_line_naming_it(monkeypatch, backend, module, extra):
    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setitem(sys.modules, f"{module}.collections.asr.models", None)
    with pytest.raises(MissingExtraError) as error:
        load_backend(backend, model="some/model")
    message = str(error.value)
    assert "\n" not in message and f"vaglio[{extra}]" in message


def test_building_a_backend_without_its_extra_names_the_extra(monkeypatch):
    from pipeline.asr.nemo_backend import NemoBackend
    from pipeline.asr.vllm_backend import VllmWhisperBackend

    monkeypatch.setitem(sys.modules, "vllm", None)
    monkeypatch.setitem(sys.modules, "nemo.collections.asr.models", None)
    with pytest.raises(MissingExtraError, match=r"vaglio\[vllm\]"):
        VllmWhisperBackend("openai/whisper-large-v3")
    with pytest.raises(MissingExtraError, match=r"vaglio\[nemo\]"):
        NemoBackend("nvidia/parakeet-ctc-0.6b")


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
    assert all(0 <= w.start <= w.end <= 3.0 for h in hypotheses for w in h.words)
    plain = backend.transcribe(audios[:1], ["en"])
    assert plain[0].avg_logprob is not None and plain[0].words == ()
    timed = backend.transcribe(audios, ["en"] * 3, word_timings=True)
    assert [h.text for h in timed] == [h.text for h in hypotheses]  # timing changes no text
    assert all(h.words or h.words_missing for h in timed if h.text.strip())


def test_a_model_of_vaglio_train_times_words_by_ctc_forced_alignment(tmp_path):
    """A tiny FAMA model (random weights, at most 6 tokens a text) through the nemo backend:
    each transcript's words are timed by a forced alignment of its tokens on the top CTC
    head, in order, inside the audio."""
    pytest.importorskip("nemo.collections.asr")
    import torch

    from training.config import build_config
    from training.model import FamaModel, ctc_token_frames
    from training.tokenizer import train_tokenizer
    from training.trainer import model_config

    # The alignment itself, on log-probabilities drawn for it: token 1 at frames 3-5, token
    # 2 at 8-9 and again at 12 (a repeated token needs a blank between its copies).
    log_probs = np.full((20, 6), np.log(0.01))
    log_probs[:, 5] = np.log(0.9)
    log_probs[3:6, 1] = log_probs[8:10, 2] = log_probs[12, 2] = np.log(0.95)
    assert ctc_token_frames(log_probs, [1, 2, 2], blank=5) == [(3, 5), (8, 9), (12, 12)]
    assert ctc_token_frames(log_probs[:3], [1, 2, 2], blank=5) is None  # too few frames
    # A long transcript (more than 127 states, past what the int8 back-pointers can count):
    # each token on a frame of its own, blanks between.
    tokens = [1 + i % 4 for i in range(100)]
    long = np.full((200, 6), np.log(0.01))
    long[:, 5] = np.log(0.9)
    long[np.arange(0, 200, 2), tokens] = np.log(0.95)
    assert ctc_token_frames(long, tokens, blank=5) == [(t, t) for t in range(0, 200, 2)]

    texts = ["ten of clubs", "go forward ten meters", "go somewhere and do something"] * 5
    train_tokenizer(texts, {"en"}, 40, tmp_path / "tokenizer.model")
    torch.manual_seed(0)
    config = build_config({"preset": "tiny", "decoding": {"beam": 1, "max_tokens": 6}})
    FamaModel(model_config(config, tmp_path / "tokenizer.model")).save_to(str(tmp_path / "m.nemo"))
    backend = load_backend("nemo", model=str(tmp_path / "m.nemo"), device="cpu", batch_size=2)
    rng = np.random.default_rng(0)
    audios = [0.1 * rng.standard_normal(16_000 * s).astype(np.float32) for s in (1, 2, 3)]
    timed = backend.transcribe(audios, ["en"] * 3, word_timings=True)
    assert [h.text for h in timed] == [h.text for h in backend.transcribe(audios, ["en"] * 3)]
    assert any(h.words for h in timed)
    for hypothesis, seconds in zip(timed, (1, 2, 3)):
        times = [t for w in hypothesis.words for t in (w.start, w.end)]
        assert times == sorted(times) and all(0 <= t <= seconds for t in times)
        assert all(w.text for w in hypothesis.words)
        assert hypothesis.words or hypothesis.words_missing == "not_aligned"
