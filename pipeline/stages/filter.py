"""Mark rows that should not be trained on with a `drop_reason`; never delete a row.

Reasons, in the order they are checked (the first that fires is recorded): the recording
failed the language gate (pass 1); the utterance is too short or too long; a hallucination
rule (`pipeline.text.rules`); the text's language differs from the audio's; the two ASR
passes disagree. The text rules read the row's written form (`text_written`) as
`normal_words`, the form in which pass 2 compared the passes, so a number written as digits in
one place and as words in another is one word to every rule. `vaglio filter-text` runs the
same rules, bar the two that need audio.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from manifests.schemas import FILTERED, with_versions
from pipeline.asr.language_gate import LANG_UNCERTAIN, LANG_UNDECLARED
from pipeline.stage import ShardContext, Stage
from pipeline.text.lid import TextLidConfig, identify_language
from pipeline.text.rules import (
    REASONS,
    HallucinationConfig,
    hallucination_reason,
    lang_mismatch,
    normal_words,
)
from pipeline.validation import NonNegative, PositiveSeconds, Seconds

DURATION = "duration_out_of_range"
PASS_DISAGREEMENT = "pass_disagreement"

# Text LID reads the start of a row: enough to be sure of a language, and bounded on a runaway
# transcript of thousands of words.
LID_CHARACTERS = 5000

DROP_REASONS = (LANG_UNDECLARED, LANG_UNCERTAIN, DURATION, *REASONS, PASS_DISAGREEMENT)
"""Every reason a segment can be dropped for, in the order they are checked."""


@dataclass(frozen=True)
class FilterConfig:
    rules: HallucinationConfig = field(default_factory=HallucinationConfig)
    text_lid: TextLidConfig = field(default_factory=TextLidConfig)
    min_duration_s: Seconds = 0.1
    max_duration_s: PositiveSeconds = 40.0
    max_pass_wer: NonNegative = 0.5  # drop when pass 1 and pass 2 differ in more than this share

    def __post_init__(self) -> None:
        if self.min_duration_s > self.max_duration_s:
            raise ValueError(
                f"min_duration_s ({self.min_duration_s}) is above max_duration_s "
                f"({self.max_duration_s}): every row would be dropped"
            )


@dataclass(frozen=True)
class Verdict:
    drop_reason: str | None
    text_lang: str | None = None  # None when there are no words to identify
    text_lang_prob: float | None = None


def judge(
    written: str, duration: float, lang: str, config: FilterConfig, pass_wer: float | None = None
) -> Verdict:
    """Every rule after the language gate, on a row's written form (`written_form`); without
    `pass_wer` (one pass) that rule is skipped."""
    tokens = normal_words(written, lang)
    text_lang, text_prob = (
        identify_language(written[:LID_CHARACTERS], config.text_lid) if tokens else (None, None)
    )
    if not config.min_duration_s <= duration <= config.max_duration_s:
        reason = DURATION
    else:
        reason = hallucination_reason(tokens, duration, lang, config.rules) or lang_mismatch(
            tokens, lang, text_lang, text_prob, config.rules
        )
    if not reason and pass_wer is not None and pass_wer > config.max_pass_wer:
        reason = PASS_DISAGREEMENT
    return Verdict(reason, text_lang, text_prob)


class Filter(Stage):
    name = "filter"
    version = "4"  # 4: rules read the written form as `normal_words`
    inputs = ("pass2",)

    def run(self, context: ShardContext) -> pa.Table:
        table = context.read("pass2")
        columns = ("text_written", "duration", "lang", "gate_reason", "pass_wer")
        verdicts = [
            Verdict(gate) if gate else judge(text or "", duration, lang, self.config, pass_wer)
            for text, duration, lang, gate, pass_wer in zip(
                *(table[c].to_pylist() for c in columns)
            )
        ]
        added = [
            pa.array([v.text_lang for v in verdicts], pa.string()),
            pa.array([v.text_lang_prob for v in verdicts], pa.float32()),
            pa.array([v.drop_reason for v in verdicts], pa.string()),
        ]
        filtered = pa.table([*table.columns, *added], schema=FILTERED)
        return with_versions(filtered, self.name, self.version_tag)


class TextRowError(ValueError):
    """A `duration<TAB>text` row that cannot be read."""


@dataclass(frozen=True)
class TextRow:
    line: int
    duration: float
    text: str


def utf8_lines(raw: Iterable[bytes]) -> Iterator[str]:
    """Lines of UTF-8 text (a byte-order mark first is dropped); a line that is not UTF-8
    raises, naming the line and the byte, rather than being guessed at."""
    for number, line in enumerate(raw, start=1):
        try:
            yield line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            raise TextRowError(
                f"line {number}: not UTF-8 text (byte 0x{line[error.start]:02x} at byte "
                f"{error.start + 1} of the line)"
            ) from None


def read_text_rows(lines: Iterable[str]) -> list[TextRow]:
    """Rows of `duration<TAB>text` (seconds, transcript); a `duration<TAB>text` header and
    blank lines are skipped. A malformed row raises, naming its line: a guessed duration
    would make every rate rule meaningless."""
    rows = []
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip() or (number == 1 and line.strip().lower() == "duration\ttext"):
            continue
        duration, tab, text = line.partition("\t")
        if not tab:
            raise TextRowError(f"line {number}: expected duration<TAB>text, found no tab")
        try:
            seconds = float(duration)
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds) or seconds < 0:
            raise TextRowError(f"line {number}: duration {duration!r} is not a number of seconds")
        rows.append(TextRow(number, seconds, text))
    return rows
