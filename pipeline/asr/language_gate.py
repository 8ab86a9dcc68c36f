"""A recording's language from two witnesses, and what the gate does with it.

Whisper's language ID on one short chunk is a poor witness: on real English read commands far
apart (each "seven of clubs" a chunk of its own) Whisper base gave English 0.47-0.58, and the
rounding of one CPU's int8 GEMM against another's moved that across every fixed threshold the
gate ever had. So the evidence is gathered better rather than the threshold tuned:

- **Pooled audio.** A recording's chunks are joined, in order, into windows of up to 30 s
  (`pool_windows`), and language ID runs on the windows with the most speech: five 2 s chunks
  become one 10 s window (that same recording: English 0.87). A window of one chunk is that
  chunk, so its encoding is shared with its transcription.
- **The transcript's text.** The windows are decoded in the audio's most probable language,
  and fastText identifies the language of what was written (right on 99 % of 3-word texts).

- **How well each language fits.** Where the audio was unsure and the recording would be kept
  on doubt, its windows are also decoded in the undeclared languages the audio ranks highest
  (`rivals`): Whisper writes the language the audio is in more confidently than it translates
  into another. German espeak speech that Whisper base heard as Yiddish 0.36, German 0.28,
  English 0.12 decoded at -0.61 nats a token in German against -0.98 in English; real English
  fit English best or within 0.05 of any rival.

`judge` then drops a recording only on evidence of another language: the audio puts an
undeclared language first *and* either is sure of it (`min_lang_prob`) or the text of the
transcript is confidently in an undeclared language too; or the audio is unsure of the
declared language it puts first, and the model, told to write that language, wrote the
undeclared language the audio ranks next. Everything else in a source that
declares languages is kept and transcribed in its most probable declared language; where the
evidence was weak, the rows carry a `lang_doubt` saying which witness hesitated, for a curator
to filter on. A declared language is never lost for lack of evidence. Where a source declares
nothing, there is no language to fall back on: the top language must be sure, or confirmed by
the text, else the recording is `audio_lang_uncertain`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

LANG_UNDECLARED = "audio_lang_undeclared"
LANG_UNCERTAIN = "audio_lang_uncertain"

# Why a recording kept by the gate is flagged (`lang_doubt`); null when both witnesses agree.
AUDIO_UNSURE = "audio_unsure"  # the top language is below `min_lang_prob`, kept
AUDIO_UNDECLARED = "audio_undeclared"  # an undeclared language leads, the text did not confirm it
TEXT_UNDECLARED = "text_undeclared"  # a declared language leads, the text reads as another one


@dataclass(frozen=True)
class Verdict:
    lang: str  # the language the recording is transcribed in (or was heard in, when dropped)
    prob: float  # the audio's probability of `lang`
    drop_reason: str | None = None  # LANG_UNDECLARED or LANG_UNCERTAIN: not transcribed
    doubt: str | None = None  # kept, but one witness hesitated


def pool_windows(lengths: list[float], max_s: float) -> list[list[int]]:
    """Consecutive chunks (by their lengths in seconds) joined into windows of at most `max_s`;
    a chunk longer than that is a window of its own."""
    windows: list[list[int]] = []
    total = 0.0
    for index, length in enumerate(lengths):
        if windows and total + length <= max_s:
            windows[-1].append(index)
            total += length
        else:
            windows.append([index])
            total = length
    return windows


def most_speech(windows: list[list[int]], speech_s: list[float], count: int) -> list[list[int]]:
    """Up to `count` of `windows` (lists of chunk indices into `speech_s`), those with the most
    speech, in their original order."""
    ranked = sorted(range(len(windows)), key=lambda w: -sum(speech_s[i] for i in windows[w]))
    return [windows[w] for w in sorted(ranked[:count])]


def averaged(distributions: list[dict[str, float]], weights: list[float]) -> dict[str, float]:
    """The weighted mean of `distributions` (equal weights where all are zero)."""
    if sum(weights) <= 0:
        weights = [1.0] * len(distributions)
    total_weight = sum(weights)
    total: dict[str, float] = defaultdict(float)
    for distribution, weight in zip(distributions, weights):
        for lang, p in distribution.items():
            total[lang] += p * weight / total_weight
    return dict(total)


def most_probable(distribution: dict[str, float]) -> tuple[str, float]:
    return max(distribution.items(), key=lambda kv: kv[1])


def judge(
    audio: dict[str, float],
    text: tuple[str, float] | None,
    declared: list[str],
    min_lang_prob: float,
    min_text_prob: float,
) -> Verdict:
    """The gate's verdict on a recording whose pooled audio gave `audio` and whose windows'
    transcript (decoded in the audio's top language) reads as `text` (language, probability;
    None when nothing was written)."""
    top, p_top = most_probable(audio)
    text_lang = text[0] if text is not None and text[1] >= min_text_prob else None
    if not declared:
        if p_top >= min_lang_prob:
            return Verdict(top, p_top)
        if text_lang == top:
            return Verdict(top, p_top, doubt=AUDIO_UNSURE)
        return Verdict(top, p_top, drop_reason=LANG_UNCERTAIN)
    if top not in declared:
        if p_top >= min_lang_prob or (text_lang is not None and text_lang not in declared):
            return Verdict(top, p_top, drop_reason=LANG_UNDECLARED)
        fallback = max(declared, key=lambda lang: audio.get(lang, 0.0))
        return Verdict(fallback, audio.get(fallback, 0.0), doubt=AUDIO_UNDECLARED)
    if text_lang is not None and text_lang not in declared:
        rival = max((lang for lang in audio if lang not in declared), key=audio.get, default=None)
        if p_top < min_lang_prob and text_lang == rival:  # written in it when told `top`
            return Verdict(rival, audio[rival], drop_reason=LANG_UNDECLARED)
        return Verdict(top, p_top, doubt=TEXT_UNDECLARED)
    return Verdict(top, p_top, doubt=AUDIO_UNSURE if p_top < min_lang_prob else None)


def rivals(audio: dict[str, float], declared: list[str], count: int) -> list[str]:
    """The `count` undeclared languages the audio finds most probable."""
    undeclared = sorted(
        (lang for lang in audio if lang not in declared), key=audio.__getitem__, reverse=True
    )
    return undeclared[:count]


def reconsider(
    verdict: Verdict,
    audio: dict[str, float],
    fits: dict[str, tuple[float, tuple[str, float] | None]],
    declared: list[str],
    min_fit_lead: float,
    min_text_prob: float,
) -> Verdict:
    """A recording kept on doubt, given how its windows fit each language they were decoded
    in (`fits`: mean log-probability per token, and what text LID reads the transcript as):
    dropped when an undeclared language fits `min_fit_lead` better than the declared one it
    would be transcribed in, and its transcript reads as an undeclared language."""
    own = fits[verdict.lang][0]
    for rival in rivals(audio, declared, len(fits)):
        if rival not in fits:
            continue
        fit, text = fits[rival]
        read_as_undeclared = (
            text is not None and text[1] >= min_text_prob and text[0] not in declared
        )
        if fit - own >= min_fit_lead and read_as_undeclared:
            return Verdict(rival, audio[rival], drop_reason=LANG_UNDECLARED)
    return verdict
