"""The two-pass logic around the model calls: timestamps, the language gate, utterance cuts,
pass agreement and the filter's drop reasons."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifests.schemas import UTTERANCES
from pipeline.asr.base import Encoded, Hypothesis, TimedText
from pipeline.asr.utterances import UtteranceConfig, cut_utterances
from pipeline.asr.whisper_tokens import timed_phrases
from pipeline.config import load_config
from pipeline.stage import ShardContext
from pipeline.stages.filter import Filter, FilterConfig
from pipeline.stages.pass1 import (
    LANG_UNCERTAIN,
    LANG_UNDECLARED,
    Pass1,
    Pass1Config,
    averaged,
    gate_reason,
    held_groups,
    most_probable,
    most_speech,
)
from pipeline.stages.pass2 import Pass1Recording, Pass2, Pass2Config, pass_disagreement

TS = 1000  # a made-up first timestamp token id


def decode(tokens: list[int]) -> str:
    return " ".join(f"w{t}" for t in tokens)


def test_whisper_timestamp_tokens_become_phrases():
    tokens = [TS + 0, 1, 2, TS + 120, TS + 120, 3, TS + 250, TS + 260, 4, 5]
    phrases = timed_phrases(tokens, TS, decode, duration=7.0)
    assert phrases == (
        TimedText(0.0, 2.4, "w1 w2"),
        TimedText(2.4, 5.0, "w3"),
        TimedText(5.2, 7.0, "w4 w5"),  # unclosed: ends with the audio
    )


def test_timestamps_without_text_give_no_phrase():
    assert timed_phrases([TS, TS + 50], TS, decode, duration=1.0) == ()


@pytest.mark.parametrize(
    ("distribution", "declared", "expected"),
    [
        ({"en": 0.95, "it": 0.05}, ["en", "it"], None),
        ({"de": 0.95, "en": 0.05}, ["en", "it"], LANG_UNDECLARED),
        ({"it": 0.50, "en": 0.45}, ["en", "it"], LANG_UNCERTAIN),  # which of the two?
        ({"it": 0.61, "la": 0.30, "en": 0.01}, ["en", "it"], None),  # sure among the declared
        ({"it": 0.61, "la": 0.30, "es": 0.09}, ["it"], None),  # Italian, twice Latin
        ({"it": 0.50, "la": 0.45, "es": 0.05}, ["it"], LANG_UNCERTAIN),  # Italian or Latin?
        ({"en": 0.43, "de": 0.32, "it": 0.01}, ["en", "it"], LANG_UNCERTAIN),  # German?
        ({"en": 0.49, "bg": 0.14, "uk": 0.05}, ["en"], None),  # short real English chunks
        ({"fr": 0.90, "en": 0.10}, [], None),  # nothing declared: sure among all languages
        ({"fr": 0.61, "la": 0.39}, [], LANG_UNCERTAIN),
    ],
)
def test_language_gate(distribution, declared, expected):
    assert gate_reason(distribution, declared, min_prob=0.7, min_lead=2.0) == expected


def test_language_id_windows_are_the_chunks_with_the_most_speech():
    speech_s = [6.4, 3.1, 4.9, 5.3, 1.8]
    assert most_speech([0, 1, 2, 3, 4], speech_s, 3) == [0, 2, 3]
    assert most_speech([1, 4], speech_s, 3) == [1, 4]


def test_a_recording_language_is_the_mean_of_its_windows_weighted_by_speech():
    mean = averaged([{"en": 0.9, "it": 0.1}, {"en": 0.4, "it": 0.6}], [1.0, 1.0])
    assert mean == {"en": pytest.approx(0.65), "it": pytest.approx(0.35)}
    # a short chunk that heard another language weighs little against a long English one
    long_en, short_ja = {"en": 0.9, "ja": 0.05}, {"ja": 0.52, "en": 0.21}
    lang, prob = most_probable(averaged([long_en, short_ja], [14.0, 1.8]))
    assert lang == "en" and prob > 0.8
    assert most_probable(averaged([long_en, short_ja], [0.0, 0.0])) == ("en", pytest.approx(0.555))


def test_kept_language_windows_are_held_in_bounded_groups():
    windows = {"a": [0, 1, 2], "b": [3], "c": [4, 5, 6], "d": list(range(7, 17))}
    assert held_groups(windows, 4) == [["a", "b"], ["c"], ["d"]]  # a larger one alone


class KeptEncodings:
    """An encoding backend stand-in that counts what it encodes; every window sounds Italian."""

    name, model_id = "fake", "fake"

    def __init__(self):
        self.encoded: list[int] = []

    def encode(self, audios):
        for index in range(len(audios)):
            self.encoded.append(index)
            yield Encoded((index,), None, (1.0,))

    def detect(self, encoded):
        return [{"it": 0.8, "en": 0.2}]

    def decode(self, encoded, languages, *, timestamps=False):
        return [Hypothesis(f"{languages[0]} {encoded.indices[0]}")]

    def transcribe(self, audios, languages, *, timestamps=False):
        raise AssertionError("a language window was encoded twice")

    def language_probabilities(self, windows):
        raise AssertionError("language ID did not share the transcription's encodings")


def test_pass_one_decodes_its_language_windows_from_the_encodings_it_identified(monkeypatch):
    backend = KeptEncodings()
    monkeypatch.setattr("pipeline.stages.pass1.loaded_backend", lambda config: backend)
    stage = Pass1(Pass1Config(lid_windows=2))
    recordings = ["a", "a", "a", "b"]
    languages, first = stage._languages(recordings, [np.zeros(16)] * 4, [3.0, 1.0, 2.0, 1.0])
    assert {rid: most_probable(d) for rid, d in languages.items()} == {
        "a": ("it", pytest.approx(0.8)),
        "b": ("it", pytest.approx(0.8)),
    }
    assert len(backend.encoded) == 3  # two windows of a (the most speech: 0 and 2), one of b
    assert sorted(first) == [0, 2, 3] and first[2].text == "it 1"


SPEECH = [(0.5, 3.0), (3.8, 6.0), (6.1, 9.0), (10.0, 12.0)]


def test_utterances_end_at_sentence_ends_and_cuts_land_in_pauses():
    phrases = [
        TimedText(0.4, 3.4, "First sentence."),
        TimedText(3.4, 9.4, "Second one, with a short breath inside."),
        TimedText(9.4, 12.0, "Third."),
    ]
    one_each = UtteranceConfig(pad_s=0.1, join_s=0.0)
    cuts = cut_utterances(phrases, SPEECH, duration=12.5, config=one_each)
    assert [u.text for u in cuts] == [p.text for p in phrases]
    assert cuts[0].end == pytest.approx(3.1)  # in the pause 3.0-3.8, not at Whisper's 3.4
    assert cuts[1].start == pytest.approx(3.7)
    assert cuts[1].end == pytest.approx(9.1)  # the 0.1 s breath at 6.0 is not a cut
    assert cuts[2].start == pytest.approx(9.9)
    assert cuts[2].end == pytest.approx(12.1)


def test_sentences_join_while_the_utterance_stays_short_and_no_long_pause_parts_them():
    sentences = [TimedText(i * 4.0 + 0.2, i * 4.0 + 3.6, f"Sentence {i}.") for i in range(6)]
    speech = [(t.start, t.end) for t in sentences]
    cuts = cut_utterances(sentences, speech, 24.0, UtteranceConfig(join_s=12.0))
    assert [u.text for u in cuts] == ["Sentence 0. Sentence 1. Sentence 2.",
                                      "Sentence 3. Sentence 4. Sentence 5."]  # fmt: skip
    parted = [*sentences[:2], TimedText(10.6, 11.8, "After a long pause.")]
    speech = [(t.start, t.end) for t in parted]
    cuts = cut_utterances(parted, speech, 12.0, UtteranceConfig(join_s=12.0, join_pause_s=2.0))
    assert [u.text for u in cuts] == ["Sentence 0. Sentence 1.", "After a long pause."]


def test_phrases_without_pause_or_full_stop_join_up_to_the_longest_utterance():
    phrases = [TimedText(i * 4.0, i * 4.0 + 4.0, f"part {i}") for i in range(10)]
    config = UtteranceConfig(max_s=12.0)
    cuts = cut_utterances(phrases, [(0.0, 40.0)], duration=40.0, config=config)
    assert [u.text for u in cuts] == ["part 0 part 1 part 2", "part 3 part 4 part 5",
                                      "part 6 part 7 part 8", "part 9"]  # fmt: skip
    assert all(u.end - u.start <= config.max_s for u in cuts)
    assert all(a.end == b.start for a, b in pairwise(cuts))  # one cut, no overlap


def covered(speech: list[tuple[float, float]], cuts: list[TimedText]) -> float:
    """Seconds of `speech` inside the utterances."""
    return sum(max(0.0, min(b, u.end) - max(a, u.start)) for a, b in speech for u in cuts)


def test_speech_that_pass_one_missed_becomes_an_utterance_of_its_own():
    phrases = [TimedText(0.5, 3.0, "Heard."), TimedText(10.0, 12.0, "Heard again.")]
    cuts = cut_utterances(phrases, SPEECH, duration=12.5, config=UtteranceConfig(pad_s=0.1))
    assert [u.text for u in cuts] == ["Heard.", "", "Heard again."]
    assert cuts[1].start == pytest.approx(3.7) and cuts[1].end == pytest.approx(9.1)
    assert covered(SPEECH, cuts) == pytest.approx(sum(b - a for a, b in SPEECH))
    assert all(a.end <= b.start for a, b in pairwise(cuts))


def test_a_chunk_without_pass_one_words_is_cut_at_its_pauses():
    cuts = cut_utterances([], SPEECH, duration=12.5, config=UtteranceConfig(pad_s=0.1))
    assert [(u.start, u.end) for u in cuts] == [(0.4, 3.1), (3.7, 9.1), (9.9, 12.1)]
    assert {u.text for u in cuts} == {""}


def test_an_utterance_edge_inside_speech_moves_out_to_the_pause():
    """Whisper's end timestamp 1.5 s early, far from any pause: the word is not cut off."""
    phrases = [TimedText(0.5, 4.5, "First part."), TimedText(10.0, 12.0, "Last.")]
    cuts = cut_utterances(phrases, SPEECH, duration=12.5, config=UtteranceConfig(pad_s=0.1))
    assert cuts[0].end == pytest.approx(6.0 + 0.1)  # the end of the speech around 4.5
    assert covered(SPEECH, cuts) == pytest.approx(sum(b - a for a, b in SPEECH))


def test_numbers_spelled_or_in_digits_are_no_disagreement():
    assert pass_disagreement("Five, five. Ten of clubs.", "5, 5. 10 of clubs", "en") == 0.0
    assert pass_disagreement("Ho comprato tre mele.", "ho comprato 3 mele", "it") == 0.0
    assert pass_disagreement("Five", "5", "xx") == 1.0  # a language text2num does not read


def test_pass_disagreement_is_a_word_error_rate_after_normalisation():
    assert pass_disagreement("Hello, World!", "hello world") == 0.0
    assert pass_disagreement("a b c d", "a b x d") == pytest.approx(0.25)
    assert pass_disagreement("", "") == 0.0
    assert pass_disagreement("something", "") == 1.0
    assert pass_disagreement("", "something") == 1.0


def test_whisper_backends_refuse_utterances_longer_than_they_can_hear():
    with pytest.raises(ValueError, match="30 s"):
        Pass2(Pass2Config(utterances=UtteranceConfig(max_s=40.0)))


def _utterance_rows(rows: list[dict]) -> pa.Table:
    base = {
        "recording_id": "src/a.wav",
        "source": "src",
        "license": "CC0-1.0",
        "license_text": "CC0",
        "attribution": "x",
        "declared_languages": ["en"],
        "lang": "en",
        "lang_prob": 0.99,
        "gate_reason": None,
        "avg_logprob": -0.2,
        "no_speech_prob": 0.01,
        "versions": [("pass2", "1")],
    }
    filled = [base | {"segment_id": f"src/a.wav#{i:04d}"} | row for i, row in enumerate(rows)]
    return pa.Table.from_pylist(filled, schema=UTTERANCES)


def test_filter_names_the_first_reason_that_applies(tmp_path):
    good = "the weather forecast says it will be sunny all weekend"
    rows = [
        {"offset": 0.0, "duration": 4.0, "text_pass1": good, "text": good, "pass_wer": 0.0},
        {"offset": 5.0, "duration": 4.0, "gate_reason": "audio_lang_undeclared",
         "text_pass1": None, "text": None, "pass_wer": None},
        {"offset": 9.0, "duration": 0.05, "text_pass1": "ok", "text": "", "pass_wer": 1.0},
        {"offset": 10.0, "duration": 4.0, "text_pass1": "the weather is bad today again",
         "text": good, "pass_wer": 0.6},
        {"offset": 15.0, "duration": 4.0, "text_pass1": "", "text": "", "pass_wer": 0.0},
    ]  # fmt: skip
    path = tmp_path / "pass2" / "s1.parquet"
    path.parent.mkdir()
    pq.write_table(_utterance_rows(rows), path)
    context = ShardContext("s1", tmp_path)
    reasons = Filter(FilterConfig()).run(context)["drop_reason"].to_pylist()
    assert reasons == [
        None,
        "audio_lang_undeclared",
        "duration_out_of_range",
        "pass_disagreement",
        "empty_text",
    ]
    lenient = Filter(FilterConfig(max_pass_wer=0.8)).run(context)["drop_reason"].to_pylist()
    assert lenient[3] is None


def test_speech_only_pass_two_heard_is_judged_without_the_agreement_rule(tmp_path):
    """Pass 1 left it without words (text_pass1 ""), so there is no pass_wer to hold against
    it; the other rules still apply."""
    good = "the weather forecast says it will be sunny all weekend"
    rows = [
        {"offset": 0.0, "duration": 4.0, "text_pass1": "", "text": good, "pass_wer": None},
        {"offset": 5.0, "duration": 4.0, "text_pass1": "", "text": "", "pass_wer": None},
    ]
    path = tmp_path / "pass2" / "s1.parquet"
    path.parent.mkdir()
    pq.write_table(_utterance_rows(rows), path)
    reasons = Filter(FilterConfig()).run(ShardContext("s1", tmp_path))["drop_reason"]
    assert reasons.to_pylist() == [None, "empty_text"]


def test_a_partial_model_setting_keeps_the_rest_of_the_pass_defaults(tmp_path):
    """`pass1: {asr: {batch_size: 4}}` changes the batch, not pass 1's greedy, short-margin
    decoding back to the class defaults."""
    path = tmp_path / "pipeline.yaml"
    path.write_text("pass1: {asr: {batch_size: 4}}\n", encoding="utf-8")
    pass1 = load_config(path).pass1
    assert pass1.asr.batch_size == 4
    assert (pass1.asr.beam_size, pass1.asr.window_margin_s) == (1, 2.0)
    assert pass1.lid == Pass1Config().lid


def test_a_joined_utterance_whose_passes_disagree_is_decoded_again_one_sentence_per_row():
    said = [(0.5, 2.0, "One two three."), (2.6, 4.0, "Four five six."), (4.6, 6.0, "Seven eight.")]
    recording = Pass1Recording(
        phrases=[TimedText(a, b, text) for a, b, text in said],
        speech=[(a, b) for a, b, _ in said],
        duration=7.0,
        transcribed=True,
        chunks=[],
    )
    (joined,) = recording.utterances(UtteranceConfig())
    assert joined.text == "One two three. Four five six. Seven eight."
    stage = Pass2(Pass2Config())
    asked = []

    def decode(context, planned, languages):  # stands in for Whisper: it skipped two sentences
        asked.append([u for _, u in planned])
        return [Hypothesis(u.text if len(asked) > 1 else "One two three.") for _, u in planned]

    stage._decode = decode
    planned = [("r", joined)]
    rows = stage._split_disagreeing(
        None, {"r": recording}, planned, decode(None, planned, {}), {"r": "en"}
    )
    assert [(u.text, h.text) for _, u, h, _ in rows] == [(text, text) for _, _, text in said]
    spans = [(u.start, u.end) for _, u, _, _ in rows]
    assert all(a < b <= c for (a, b), (c, _) in pairwise(spans))
    assert joined.start <= spans[0][0] and spans[-1][1] <= joined.end
    assert all(a <= start and end <= b for (a, b), (start, end, _) in zip(spans, said))

    asked.clear()
    agreeing = stage._split_disagreeing(
        None, {"r": recording}, planned, [Hypothesis(joined.text)], {"r": "en"}
    )
    assert [u for _, u, _, _ in agreeing] == [joined] and asked == [[]]
