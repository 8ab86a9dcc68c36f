"""Whisper through faster-whisper (CTranslate2): int8 on the CPU, float16 on a GPU.

Pieces of audio from many recordings go through the encoder and decoder together, each with
its own language token in the prompt, so a batch never waits for one file. While CTranslate2
decodes one batch (it releases the GIL), a helper thread computes the next batch's features.

Whisper pads every input to 30 s, so a 4 s utterance costs as much encoder time as 30 s of
speech. Here a batch is padded to its longest audio plus `window_margin_s` (at least 8 s, at
most 30 s): the encoder's cost follows the audio. With less than ~6 s of padding Whisper
starts to loop; with 6 s the word error rate on the bench's utterances matched full padding
(bench/asr_vs_plain.py prints both). A margin of 30 s restores Whisper's own padding.
`language_probabilities` sees full 30 s windows; pass 1 instead asks for the language on the
encodings it then transcribes (`encode`, `detect`, `decode`), so its windows are encoded once.

A decoder can run away in a loop: on 28 s of read card names, greedy and beam 5 alike wrote
"8th of clubs" until the length limit, and sampling at temperature 0.2 heard every card. As in
Whisper's own `transcribe`, a text that gzip shrinks more than `LOOP_RATIO` is a loop, and its
audio is decoded again by sampling at rising `LOOP_TEMPERATURES` until a decode ends; unlike
there, only a decode that never ended counts, because speech can repeat itself ("eight of
spades, four of clubs" five times, sampled, kept one of the five). A loop no decode escapes
stays, for the filter to drop.

Word timings come after decoding, from the text that was kept: CTranslate2's `align` runs the
decoder once over each text and warps the attention of the model's alignment heads (listed in
its config) to the audio frames, as Whisper's own word timestamps do, for a whole batch per
call and per language. On 2 cores it took 5 % of pass 2's time on the demo corpus and 12 % on
short real clips (bench/word_timings.py).
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pipeline.asr.base import Encoded, Hypothesis, TimedText
from pipeline.asr.offline_models import resolve_whisper_model
from pipeline.asr.whisper_tokens import timed_phrases, timed_words

FRAMES_PER_S = 100  # 10 ms mel frames
ALIGNMENT_FRAMES_PER_S = 50  # the encoder halves the frame rate: its output is one per 20 ms
WINDOW_S = 30.0  # Whisper's input window: audio is padded (or cut) to it
MIN_WINDOW_S = 8.0
WINDOW_STEP_S = 2.0  # few distinct input shapes keep CTranslate2's cached buffers few
BATCH_SLACK_S = 4.0
LOOP_RATIO = 2.4  # the compression ratio of a loop: Whisper's own threshold
LOOP_TEMPERATURES = (0.2, 0.4, 0.6, 0.8, 1.0)  # Whisper's own fallback steps
_MODELS: dict[tuple, object] = {}  # loaded weights, shared by backends (built under a lock)


def compression_ratio(text: str) -> float:
    """Bytes of `text` per byte of its gzip: high for text that repeats itself."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _text_tokens(result, eot: int) -> list[int]:
    return [t for t in result.sequences_ids[0] if t < eot]


def _token_starts(path: list[tuple[int, int]], tokens: int) -> np.ndarray:
    """Where each of `tokens` text tokens, and the end of text after them, starts (seconds):
    the first step of the alignment path, (token index, frame), that reaches it."""
    token_index = np.array([step[0] for step in path])
    frame = np.array([step[1] for step in path])
    first = np.searchsorted(token_index, np.arange(tokens + 1))
    return frame[np.minimum(first, len(frame) - 1)] / ALIGNMENT_FRAMES_PER_S


class FasterWhisperBackend:
    name = "faster-whisper"

    def __init__(
        self,
        model: str,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 2,
        batch_size: int = 8,
        beam_size: int = 5,
        window_margin_s: float = 6.0,
    ):
        import ctranslate2
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        ctranslate2.set_random_seed(0)
        self.model_id = model
        weights = (resolve_whisper_model(model), device, compute_type, cpu_threads)
        if weights not in _MODELS:  # one copy for passes that only decode differently
            _MODELS[weights] = WhisperModel(
                weights[0], device=device, compute_type=compute_type, cpu_threads=cpu_threads
            )
        self.model = _MODELS[weights]
        self.tokenizer = Tokenizer(
            self.model.hf_tokenizer, multilingual=True, task="transcribe", language="en"
        )
        self.batch_size = batch_size
        self.beam_size = beam_size
        self.window_margin_s = window_margin_s
        self._feature_thread = ThreadPoolExecutor(1, thread_name_prefix="whisper-features")
        self._suppressed = get_suppressed_tokens(self.tokenizer, [-1])
        # CTranslate2 decodes at most half of `max_length` tokens (224, Whisper's `sample_len`)
        self._longest_decode = self.model.max_length // 2

    def _fitted_window_s(self, samples: int) -> float:
        """The window for audio of `samples`: its length plus the margin, in steps."""
        seconds = samples / self.model.feature_extractor.sampling_rate + self.window_margin_s
        return min(WINDOW_S, max(MIN_WINDOW_S, math.ceil(seconds / WINDOW_STEP_S) * WINDOW_STEP_S))

    def _features(self, audios: list[np.ndarray], window_s: float | None) -> np.ndarray:
        """Log-mel features of a batch, padded to `window_s`, or fitted to the batch if None."""
        from faster_whisper.audio import pad_or_trim

        if window_s is None:
            window_s = self._fitted_window_s(max(len(a) for a in audios))
        frames = round(window_s * FRAMES_PER_S)
        return np.stack([pad_or_trim(self.model.feature_extractor(a), frames) for a in audios])

    def _prefetched(
        self, audios: list[np.ndarray], batches: list[list[int]], window_s: float | None = None
    ) -> Iterator:
        """Features of each batch, the next one computed while the caller decodes this one."""
        pending = None
        for number, batch in enumerate(batches):
            if pending is None:
                first = [audios[i] for i in batch]
                pending = self._feature_thread.submit(self._features, first, window_s)
            features = pending.result()
            if number + 1 < len(batches):
                upcoming = [audios[i] for i in batches[number + 1]]
                pending = self._feature_thread.submit(self._features, upcoming, window_s)
            yield features

    def _batches(self, audios: list[np.ndarray]) -> list[list[int]]:
        """Indices in batches of similar lengths, whose fitted windows differ by at most
        `BATCH_SLACK_S`: the encoder's cost per second grows with the window (12 ms at 8 s,
        26 ms at 30 s on 2 cores), so padding a 10 s utterance to its batch's 26 s costs more
        than a smaller batch (pass 2 on the demo corpus: 16.0 s with full batches, 13.5 s so)."""
        order = sorted(range(len(audios)), key=lambda i: len(audios[i]))
        batches: list[list[int]] = []
        for index in order:
            if (
                batches
                and len(batches[-1]) < self.batch_size
                and self._fitted_window_s(len(audios[index]))
                - self._fitted_window_s(len(audios[batches[-1][0]]))
                <= BATCH_SLACK_S
            ):
                batches[-1].append(index)
            else:
                batches.append([index])
        return batches

    def encode(self, audios: list[np.ndarray], window_s: float | None = None) -> Iterator[Encoded]:
        """The encoder's output for `audios`, batch by batch (similar lengths together), each
        padded to `window_s`, or fitted to its longest audio plus the margin if None."""
        rate = self.model.feature_extractor.sampling_rate
        batches = self._batches(audios)
        for batch, features in zip(batches, self._prefetched(audios, batches, window_s)):
            durations = tuple(len(audios[i]) / rate for i in batch)
            yield Encoded(tuple(batch), self.model.encode(features), durations)

    def detect(self, encoded: Encoded) -> list[dict[str, float]]:
        rankings = self.model.model.detect_language(encoded.output)
        return [{token[2:-2]: prob for token, prob in ranking} for ranking in rankings]

    def language_probabilities(self, windows: list[np.ndarray]) -> list[dict[str, float]]:
        results: dict[int, dict[str, float]] = {}
        for encoded in self.encode(windows, WINDOW_S):
            results.update(zip(encoded.indices, self.detect(encoded)))
        return [results[i] for i in range(len(windows))]

    def _prompt(self, language: str, timestamps: bool) -> list[int]:
        tokenizer = self.tokenizer
        language_token = tokenizer.tokenizer.token_to_id(f"<|{language}|>")
        if language_token is None:
            raise ValueError(f"Whisper does not know the language {language!r}")
        prompt = [tokenizer.sot, language_token, tokenizer.transcribe]
        return prompt if timestamps else [*prompt, tokenizer.no_timestamps]

    def _generate(self, output, prompts: list[list[int]], temperature: float = 0.0) -> list:
        """Beam search, or sampling at `temperature` when it is above 0."""
        sampling = {"sampling_topk": 0, "sampling_temperature": temperature}
        return self.model.model.generate(
            output,
            prompts,
            beam_size=self.beam_size if temperature == 0 else 1,
            max_length=self.model.max_length,
            suppress_blank=True,
            suppress_tokens=self._suppressed,
            return_scores=True,
            return_no_speech_prob=True,
            **(sampling if temperature > 0 else {}),
        )

    def decode(
        self,
        encoded: Encoded,
        languages: list[str],
        *,
        timestamps: bool = False,
        word_timings: bool = False,
    ) -> list[Hypothesis]:
        prompts = [self._prompt(language, timestamps) for language in languages]
        results = self._generate(encoded.output, prompts)
        loops = {i for i, result in enumerate(results) if self._ran_away(result)}
        for temperature in LOOP_TEMPERATURES:
            if not loops:
                break
            rows, output = self._rows(encoded.output, sorted(loops))
            again = self._generate(output, [prompts[i] for i in rows], temperature)
            for i, result in zip(rows, again):
                if i in loops and not self._ran_away(result):
                    results[i] = result
                    loops.discard(i)
        words = (
            self._aligned_words(encoded, results, languages, prompts)
            if word_timings
            else [()] * len(results)
        )
        return [
            self._hypothesis(result, timestamps, duration, timed)
            for result, duration, timed in zip(results, encoded.durations, words)
        ]

    def _aligned_words(
        self, encoded: Encoded, results: list, languages: list[str], prompts: list[list[int]]
    ) -> list[tuple[TimedText, ...]]:
        """Each decoded text's words, timed by dynamic time warping over the cross-attention
        of the model's alignment heads (Whisper's own word timestamps), for the whole batch
        at once; one call per language, since the prompt is shared within a call."""
        eot = self.tokenizer.eot
        texts = [_text_tokens(result, eot) for result in results]
        words: list[tuple[TimedText, ...]] = [()] * len(results)
        by_language: dict[str, set[int]] = defaultdict(set)
        for index, (language, tokens) in enumerate(zip(languages, texts)):
            if tokens:
                by_language[language].add(index)
        for language, wanted in by_language.items():
            rows, output = self._rows(encoded.output, sorted(wanted))
            frames = [round(encoded.durations[i] * FRAMES_PER_S) for i in rows]
            prompt = prompts[min(wanted)]
            alignments = self.model.model.align(output, prompt, [texts[i] for i in rows], frames)
            for i, alignment in zip(rows, alignments):
                if i in wanted:
                    starts = _token_starts(alignment.alignments, len(texts[i]))
                    starts = np.minimum(starts, encoded.durations[i])
                    words[i] = timed_words(texts[i], starts, self.tokenizer.decode, language)
        return words

    def _ran_away(self, result) -> bool:
        """The decoder never ended, repeating itself: a loop, not speech."""
        if len(result.sequences_ids[0]) < self._longest_decode:
            return False
        text = self.tokenizer.decode(_text_tokens(result, self.tokenizer.eot))
        return compression_ratio(text) > LOOP_RATIO

    @staticmethod
    def _rows(output, rows: list[int]) -> tuple[list[int], object]:
        """The encoder output of `rows` of a batch, copied out in host memory; on a GPU the
        whole batch (all its rows), which is decoded again rather than copied."""
        import ctranslate2

        if output.device != "cpu":
            return list(range(output.shape[0])), output
        return rows, ctranslate2.StorageView.from_array(np.asarray(output)[rows])

    def transcribe(
        self,
        audios: list[np.ndarray],
        languages: list[str],
        *,
        timestamps: bool = False,
        word_timings: bool = False,
    ) -> list[Hypothesis]:
        hypotheses: dict[int, Hypothesis] = {}
        for encoded in self.encode(audios):
            batch_languages = [languages[i] for i in encoded.indices]
            decoded = self.decode(
                encoded, batch_languages, timestamps=timestamps, word_timings=word_timings
            )
            hypotheses.update(zip(encoded.indices, decoded))
        return [hypotheses[i] for i in range(len(audios))]

    def _hypothesis(
        self, result, timestamps: bool, duration: float, words: tuple[TimedText, ...]
    ) -> Hypothesis:
        tokenizer = self.tokenizer
        sequence = [
            t
            for t in result.sequences_ids[0]
            if t < tokenizer.eot or t >= tokenizer.timestamp_begin
        ]
        text_tokens = _text_tokens(result, tokenizer.eot)
        length = len(result.sequences_ids[0])
        phrases = (
            timed_phrases(sequence, tokenizer.timestamp_begin, tokenizer.decode, duration)
            if timestamps
            else ()
        )
        return Hypothesis(
            text=tokenizer.decode(text_tokens).strip(),
            avg_logprob=float(result.scores[0] * length / (length + 1)),
            no_speech_prob=float(result.no_speech_prob),
            segments=phrases,
            words=words,
        )
