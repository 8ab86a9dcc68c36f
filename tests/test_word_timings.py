"""Word timings: Whisper's tokens grouped into words, and words fitted to the speech the VAD
heard. (Timings on real speech, end to end: tests/test_speech_recall.py; in the exports:
tests/test_export.py; NeMo's: tests/test_asr_backends.py.)"""

from __future__ import annotations

from collections.abc import Callable

import tokenizers

from pipeline.asr.base import TimedText
from pipeline.asr.offline_models import resolve_whisper_model
from pipeline.asr.whisper_tokens import timed_words
from pipeline.asr.word_timings import MIN_WORD_S, fit_to_speech


def whisper_tokens(text: str) -> tuple[list[int], Callable[[list[int]], str]]:
    """`text` as Whisper base's tokenizer encodes it, and its decoder."""
    tokenizer = tokenizers.Tokenizer.from_file(
        f"{resolve_whisper_model('whisper-base')}/tokenizer.json"
    )
    return tokenizer.encode(text, add_special_tokens=False).ids, tokenizer.decode


def test_punctuation_joins_its_word_without_taking_its_time():
    tokens, decode = whisper_tokens(' He said "yes" (twice)... Go forward, 10 meters ...')
    starts = [0.1 * i for i in range(len(tokens) + 1)]
    words = timed_words(tokens, starts, decode, "en")
    assert [w.text for w in words] == [
        "He", "said", '"yes"', "(twice)...", "Go", "forward,", "10", "meters..."
    ]  # fmt: skip
    by_text = {w.text: w for w in words}
    # ' "', 'yes', '"': the word's time is its letters' token only
    assert (by_text['"yes"'].start, by_text['"yes"'].end) == (starts[3], starts[4])
    # ' (', 'tw', 'ice', ')...': two tokens of letters
    assert (by_text["(twice)..."].start, by_text["(twice)..."].end) == (starts[6], starts[8])
    # the closing dots' time (where Whisper parks the pause after them) is no word's
    assert by_text["meters..."].end == starts[-2]


def test_a_word_of_several_tokens_and_a_script_without_spaces():
    tokens, decode = whisper_tokens(" naïve café")
    words = timed_words(tokens, [0.0, 0.2, 0.3, 0.4, 0.9], decode, "fr")
    assert [(w.text, w.start, w.end) for w in words] == [("naïve", 0.0, 0.4), ("café", 0.4, 0.9)]
    tokens, decode = whisper_tokens(" 你好世界")
    words = timed_words(tokens, [0.0, 0.3, 0.6, 1.2], decode, "zh")
    assert [w.text for w in words] == ["你", "好", "世界"]  # each token of whole characters


def test_words_move_into_the_speech_around_them():
    """What Whisper base's alignment gave on real clips: the first word starts at 0 in the
    silence before the speech, and a pause (1.06-2.12 s) is given to the word after it."""
    aligned = [TimedText(0.0, 0.44, "10"), TimedText(0.44, 0.58, "of"),
               TimedText(0.58, 0.84, "clubs."), TimedText(0.84, 2.42, "7"),
               TimedText(2.42, 2.68, "of"), TimedText(2.68, 3.16, "clubs.")]  # fmt: skip
    speech = [(0.27, 1.09), (2.09, 3.26)]
    fitted = fit_to_speech(aligned, speech, 3.6)
    assert [w.text for w in fitted] == [w.text for w in aligned]
    assert (fitted[0].start, fitted[2].end) == (0.27, 1.09)  # the first sentence's speech
    assert (fitted[3].start, fitted[5].end) == (2.09, 3.26)  # the second's
    assert (fitted[3].end, fitted[4].start) == (2.42, 2.42)  # inside speech, the alignment's


def test_fitted_words_stay_ordered_inside_the_audio_whatever_the_alignment():
    crowded = [TimedText(3.0, 3.1, "a"), TimedText(3.1, 3.2, "b"), TimedText(3.2, 3.3, "c")]
    fitted = fit_to_speech(crowded, [(0.5, 1.0)], 4.0)  # all three after the only speech
    times = [t for w in fitted for t in (w.start, w.end)]
    assert times == sorted(times) and (times[0], times[-1]) == (0.5, 1.0)
    assert min(w.end - w.start for w in fitted) >= MIN_WORD_S
    unfenced = fit_to_speech([TimedText(-0.2, 0.5, "a"), TimedText(0.5, 9.0, "b")], [], 2.0)
    assert [(w.start, w.end) for w in unfenced] == [(0.0, 0.5), (0.5, 2.0)]  # only clipped
    assert fit_to_speech([], [(0.0, 1.0)], 1.0) == ()
