"""Mark rows that should not be trained on with a `drop_reason`; never delete a row.

Reasons, in the order they are checked (the first that fires is recorded): the recording
failed the language gate (pass 1); the utterance is too short or too long; its audio rates
below `min_dnsmos_ovrl` or `min_snr_db` (the `quality` stage's figures; both rules are off
unless configured); a hallucination rule (`pipeline.text.rules`); the text's language differs
from the audio's; the two ASR passes disagree. The text rules read the row's written form
(`text_written`) as `normal_words`, the form in which pass 2 compared the passes, so a number
written as digits in one place and as words in another is one word to every rule.
`vaglio filter-text` runs the same rules, bar the four that need audio.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Annotated

import pyarrow as pa
from pydantic import Field

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
DNSMOS_LOW = "dnsmos_ovrl_low"
SNR_LOW = "snr_db_low"
PASS_DISAGREEMENT = "pass_disagreement"

# Text LID reads the start of a row: enough to be sure of a language, and bounded on a runaway
# transcript of thousands of words.
LID_CHARACTERS = 5000

DROP_REASONS = (
    LANG_UNDECLARED,
    LANG_UNCERTAIN,
    DURATION,
    DNSMOS_LOW,
    SNR_LOW,
    *REASONS,
    PASS_DISAGREEMENT,
)
"""Every reason a segment can be dropped for, in the order they are checked."""


@dataclass(frozen=True)
class FilterConfig:
    rules: HallucinationConfig = field(default_factory=HallucinationConfig)
    text_lid: TextLidConfig = field(default_factory=TextLidConfig)
    min_duration_s: Seconds = 0.1
    max_duration_s: PositiveSeconds = 40.0
    max_pass_wer: NonNegative = 0.5  # drop when pass 1 and pass 2 differ in more than this share
    # Audio quality rules, off unless set: drop a rated row below this DNSMOS OVRL (P.835
    # scale) or this estimated SNR; a row the quality stage did not rate is not judged.
    min_dnsmos_ovrl: Annotated[float, Field(strict=True, ge=1, le=5)] | None = None
    min_snr_db: Annotated[float, Field(strict=True, ge=-30, le=100)] | None = None

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


def quality_reason(
    dnsmos_ovrl: float | None, snr_db: float | None, config: FilterConfig
) -> str | None:
    """The audio quality rule that drops a row, if any; a figure that is missing (not rated)
    or a rule that is off lets the row through."""
    if None not in (dnsmos_ovrl, config.min_dnsmos_ovrl) and dnsmos_ovrl < config.min_dnsmos_ovrl:
        return DNSMOS_LOW
    if None not in (snr_db, config.min_snr_db) and snr_db < config.min_snr_db:
        return SNR_LOW
    return None


def judge(
    written: str,
    duration: float,
    lang: str,
    config: FilterConfig,
    pass_wer: float | None = None,
    dnsmos_ovrl: float | None = None,
    snr_db: float | None = None,
) -> Verdict:
    """Every rule after the language gate, on a row's written form (`written_form`); without
    `pass_wer` (one pass) that rule is skipped, and without the audio's figures the quality
    rules."""
    tokens = normal_words(written, lang)
    text_lang, text_prob = (
        identify_language(written[:LID_CHARACTERS], config.text_lid) if tokens else (None, None)
    )
    if not config.min_duration_s <= duration <= config.max_duration_s:
        reason = DURATION
    else:
        reason = (
            quality_reason(dnsmos_ovrl, snr_db, config)
            or hallucination_reason(tokens, duration, lang, config.rules)
            or lang_mismatch(tokens, lang, text_lang, text_prob, config.rules)
        )
    if not reason and pass_wer is not None and pass_wer > config.max_pass_wer:
        reason = PASS_DISAGREEMENT
    return Verdict(reason, text_lang, text_prob)


class Filter(Stage):
    name = "filter"
    version = "5"  # 5: rules read the written form; 4: audio quality rules (`quality` rows)
    inputs = ("quality",)

    def run(self, context: ShardContext) -> pa.Table:
        table = context.read("quality")
        columns = (
            *("text_written", "duration", "lang", "gate_reason", "pass_wer"),
            *("dnsmos_ovrl", "snr_db"),
        )
        verdicts = [
            Verdict(gate) if gate else judge(text or "", duration, lang, self.config, *figures)
            for text, duration, lang, gate, *figures in zip(
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
