"""The two-pass logic around the model calls: timestamps, the language gate, utterance cuts,
pass agreement and the filter's drop reasons."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifests.schemas import SCORED
from pipeline.asr.base import Encoded, Hypothesis, TimedText
from pipeline.asr.language_gate import (
    AUDIO_UNDECLARED,
    AUDIO_UNSURE,
    LANG_UNCERTAIN,
    LANG_UNDECLARED,
    TEXT_UNDECLARED,
    averaged,
    judge,
    most_probable,
    most_speech,
    pool_windows,
    reconsider,
)
from pipeline.asr.utterances import UtteranceConfig, cut_utterances
from pipeline.asr.whisper_tokens import timed_phrases
from pipeline.config import load_config
from pipeline.stage import ShardContext
from pipeline.stages.filter import Filter, FilterConfig
from pipeline.stages.pass1 import Pass1, Pass1Config, _Window, held_groups
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


EN, DE = ("en", 0.99), ("de", 0.98)  # what fastText reads a window's transcript as


@pytest.mark.parametrize(
    ("audio", "text", "declared", "expected"),
    [
        ({"en": 0.95, "it": 0.05}, EN, ["en", "it"], ("en", None, None)),
        ({"de": 0.95, "en": 0.05}, DE, ["en", "it"], ("de", LANG_UNDECLARED, None)),
        # the audio is sure of an undeclared language: the text is not needed to drop it
        ({"de": 0.80, "en": 0.10}, None, ["en"], ("de", LANG_UNDECLARED, None)),
        # unsure audio leaning to German, and the transcript reads German: two witnesses
        ({"de": 0.48, "en": 0.18, "yi": 0.09}, DE, ["en", "it"], ("de", LANG_UNDECLARED, None)),
        # the same audio, but what Whisper wrote reads English: kept, transcribed as English
        ({"de": 0.48, "en": 0.18}, EN, ["en", "it"], ("en", None, AUDIO_UNDECLARED)),
        ({"de": 0.48, "en": 0.18}, ("de", 0.5), ["en"], ("en", None, AUDIO_UNDECLARED)),
        ({"de": 0.48, "en": 0.18}, None, ["en"], ("en", None, AUDIO_UNDECLARED)),
        # short real English chunks: weak but English; kept, flagged
        ({"en": 0.47, "bg": 0.14, "uk": 0.05}, EN, ["en"], ("en", None, AUDIO_UNSURE)),
        ({"it": 0.50, "en": 0.45}, ("it", 0.95), ["en", "it"], ("it", None, AUDIO_UNSURE)),
        ({"it": 0.61, "la": 0.30}, ("it", 0.97), ["it"], ("it", None, AUDIO_UNSURE)),
        ({"en": 0.85, "de": 0.10}, DE, ["en"], ("en", None, TEXT_UNDECLARED)),
        ({"fr": 0.90, "en": 0.10}, ("fr", 0.99), [], ("fr", None, None)),  # nothing declared
        ({"fr": 0.61, "la": 0.39}, ("fr", 0.99), [], ("fr", None, AUDIO_UNSURE)),
        ({"fr": 0.61, "la": 0.39}, ("la", 0.95), [], ("fr", LANG_UNCERTAIN, None)),
    ],
)
def test_language_gate(audio, text, declared, expected):
    verdict = judge(audio, text, declared, min_lang_prob=0.7, min_text_prob=0.9)
    assert (verdict.lang, verdict.drop_reason, verdict.doubt) == expected


@pytest.mark.parametrize("shift", [-0.1, 0.1])
def test_no_verdict_flips_when_every_audio_probability_moves_by_a_tenth(shift):
    """Declared languages moved one way, every other language the other way."""
    cases = [  # (audio, text, declared, dropped?)
        ({"en": 0.87, "ru": 0.03, "la": 0.01}, EN, ["en"], False),  # far-apart real commands
        ({"en": 0.58, "ja": 0.12, "bg": 0.10}, EN, ["en"], False),
        ({"de": 0.48, "en": 0.18, "yi": 0.09}, DE, ["en", "it"], True),  # German, en+it source
        ({"en": 0.43, "de": 0.32, "it": 0.01}, DE, ["en", "it"], True),
    ]
    for audio, text, declared, dropped in cases:
        moved = {
            lang: min(1.0, max(0.0, p + (shift if lang in declared else -shift)))
            for lang, p in audio.items()
        }
        verdict = judge(moved, text, declared, min_lang_prob=0.7, min_text_prob=0.9)
        assert (verdict.drop_reason is not None) == dropped, (moved, verdict)


def test_a_doubtful_recording_goes_to_the_undeclared_language_it_fits_clearly_better():
    # German espeak speech that Whisper base hears as Yiddish, German, English
    audio = {"yi": 0.26, "de": 0.18, "en": 0.22, "it": 0.10}
    kept = judge(audio, EN, ["en", "it"], min_lang_prob=0.7, min_text_prob=0.9)
    assert (kept.lang, kept.drop_reason, kept.doubt) == ("en", None, AUDIO_UNDECLARED)
    fits = {"en": (-0.98, EN), "yi": (-0.99, ("he", 0.99)), "de": (-0.61, DE)}
    verdict = reconsider(kept, audio, fits, ["en", "it"], min_fit_lead=0.3, min_text_prob=0.9)
    assert (verdict.lang, verdict.drop_reason) == ("de", LANG_UNDECLARED)
    # real English: a rival that fits about as well (Whisper wrote English again) is no evidence
    audio = {"en": 0.58, "ru": 0.19, "pl": 0.15}
    kept = judge(audio, EN, ["en"], min_lang_prob=0.7, min_text_prob=0.9)
    fits = {"en": (-0.31, EN), "ru": (-0.46, ("ru", 0.97)), "pl": (-0.30, EN)}
    assert reconsider(kept, audio, fits, ["en"], min_fit_lead=0.3, min_text_prob=0.9) == kept


def test_short_chunks_are_pooled_into_windows_of_up_to_thirty_seconds():
    assert pool_windows([2.0, 1.8, 2.2, 25.0, 6.0, 40.0, 3.0], 30.0) == [
        [0, 1, 2],
        [3],  # 31 s with the chunks before it
        [4],  # 31 s with the 25 s chunk
        [5],  # longer than a window: alone
        [6],
    ]


def test_language_id_hears_the_windows_with_the_most_speech():
    windows = [[0, 1], [2], [3], [4]]
    speech_s = [3.0, 3.4, 4.9, 5.3, 1.8]
    assert most_speech(windows, speech_s, 3) == [[0, 1], [2], [3]]
    assert most_speech(windows[3:], speech_s, 3) == [[4]]


def test_a_recording_language_is_the_mean_of_its_windows_weighted_by_speech():
    mean = averaged([{"en": 0.9, "it": 0.1}, {"en": 0.4, "it": 0.6}], [1.0, 1.0])
    assert mean == {"en": pytest.approx(0.65), "it": pytest.approx(0.35)}
    # a short window that heard another language weighs little against a long English one
    long_en, short_ja = {"en": 0.9, "ja": 0.05}, {"ja": 0.52, "en": 0.21}
    lang, prob = most_probable(averaged([long_en, short_ja], [14.0, 1.8]))
    assert lang == "en" and prob > 0.8
    assert most_probable(averaged([long_en, short_ja], [0.0, 0.0])) == ("en", pytest.approx(0.555))


def test_kept_language_windows_are_held_in_bounded_groups_a_recording_whole():
    windows = [_Window(rid, (i,), 1.0) for rid, i in
               [("a", 0), ("a", 1), ("a", 2), ("b", 3), ("c", 4), ("c", 5), ("c", 6)]]  # fmt: skip
    windows += [_Window("d", (i,), 1.0) for i in range(7, 17)]
    groups = held_groups(windows, 4)
    assert [[w.chunks[0] for w in g] for g in groups] == [
        [0, 1, 2, 3], [4, 5, 6], list(range(7, 17))  # a larger one alone
    ]  # fmt: skip


class KeptEncodings:
    """An encoding backend stand-in that counts what it encodes; every window sounds Italian
    and its transcript reads Italian."""

    name, model_id = "fake", "fake"

    def __init__(self):
        self.encoded: list[int] = []

    def encode(self, audios):
        for index, audio in enumerate(audios):
            self.encoded.append(len(audio))
            yield Encoded((index,), None, (1.0,))

    def detect(self, encoded):
        return [{"it": 0.8, "en": 0.2}]

    def decode(self, encoded, languages, *, timestamps=False):
        return [Hypothesis(f"questa è la finestra {encoded.indices[0]} in {languages[0]}")]

    def transcribe(self, audios, languages, *, timestamps=False):
        raise AssertionError("a language window was encoded twice")

    def language_probabilities(self, windows):
        raise AssertionError("language ID did not share the transcription's encodings")


def test_pass_one_decodes_its_language_windows_from_the_encodings_it_identified(monkeypatch):
    backend = KeptEncodings()
    monkeypatch.setattr("pipeline.stages.pass1.loaded_backend", lambda config: backend)
    stage = Pass1(Pass1Config(lid_windows=2, lid_window_s=2.0))
    recordings = ["a", "a", "a", "b"]
    second = np.zeros(16000, np.float32)
    chunks = [second, np.zeros(24000, np.float32), second, second]  # 1 s, 1.5 s, 1 s, 1 s
    windows = stage._windows(recordings, chunks, [0.9, 1.4, 0.8, 1.0])
    assert [w.chunks for w in windows] == [(0,), (1,), (3,)]  # 0+1 would be 2.5 s
    verdicts, first = stage._judged(windows, chunks, {"a": ["it"], "b": ["en", "it"]})
    assert {rid: (v.lang, v.drop_reason) for rid, v in verdicts.items()} == {
        "a": ("it", None),
        "b": ("it", None),
    }
    assert backend.encoded == [16000, 24000, 16000]  # each window once
    assert sorted(first) == [0, 1, 3] and first[1].text == "questa è la finestra 1 in it"


def test_pooled_windows_join_short_chunks_and_only_lone_chunks_give_first_transcripts(
    monkeypatch,
):
    backend = KeptEncodings()
    monkeypatch.setattr("pipeline.stages.pass1.loaded_backend", lambda config: backend)
    stage = Pass1(Pass1Config())
    second = np.zeros(16000, np.float32)
    windows = stage._windows(["a"] * 5, [second] * 5, [0.8] * 5)
    assert [w.chunks for w in windows] == [(0, 1, 2, 3, 4)]
    verdicts, first = stage._judged(windows, [second] * 5, {"a": ["it"]})
    assert backend.encoded == [5 * 16000] and first == {}
    assert verdicts["a"].lang == "it"


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
    filled = [
        base | {"segment_id": f"src/a.wav#{i:04d}", "text_written": row["text"]} | row
        for i, row in enumerate(rows)
    ]
    return pa.Table.from_pylist(filled, schema=SCORED)  # as the quality stage hands them on


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
    path = tmp_path / "quality" / "s1.parquet"
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
    path = tmp_path / "quality" / "s1.parquet"
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
