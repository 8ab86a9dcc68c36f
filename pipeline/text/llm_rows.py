"""The LLM text stages over plain rows of text, without audio or a workdir: what
`vaglio llm-text` prints and `bench/text_quality.py` measures, so prompts, models and guard
settings can be tuned on text alone with exactly what a curation would keep.

Each row becomes one record: its input, what the row would keep (`output`), the `outcome`
(`accepted` or `kept` where the model's answer passed, else the reason it was refused or
skipped) and, for translation, the model's cleaned answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from pipeline.llm import LlmBackend
from pipeline.text.pnc import PncConfig, restore_punctuation
from pipeline.text.translation import TranslationConfig, translate


@dataclass(frozen=True)
class TextRow:
    line: int  # in the input, from 1
    id: str | None  # the first field of an `id<TAB>text` row
    text: str


@dataclass(frozen=True)
class TextOutcome:
    line: int
    id: str | None
    input: str
    output: str | None  # what the row keeps: the punctuated text, or the translation
    outcome: str  # "accepted" (punctuation), "kept" (translation), or the reason
    reason: str | None  # why the answer was refused or not asked for; None when it passed
    answer: str | None = None  # translation: the model's answer without wrappers

    def record(self) -> dict:
        return asdict(self)


def read_rows(lines: Iterable[str]) -> list[TextRow]:
    """Rows of `text` or `id<TAB>text`; blank lines are skipped. A tab inside the text
    belongs to the text: only the first one separates an id."""
    rows = []
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        identifier, tab, text = line.partition("\t")
        rows.append(TextRow(number, identifier, text) if tab else TextRow(number, None, line))
    return rows


def punctuate_rows(
    rows: Sequence[TextRow], language: str, backend: LlmBackend, guard: PncConfig
) -> list[TextOutcome]:
    """Every row punctuated (in one call to the backend) and checked by the word guard."""
    results = restore_punctuation([r.text for r in rows], [language] * len(rows), backend, guard)
    return [
        TextOutcome(
            row.line, row.id, row.text, result.text, result.reason or "accepted", result.reason
        )
        for row, result in zip(rows, results, strict=True)
    ]


def translate_rows(
    rows: Sequence[TextRow],
    language: str,
    target: str,
    backend: LlmBackend,
    guard: TranslationConfig,
) -> list[TextOutcome]:
    """Every row translated into `target` (in one call to the backend) behind the guards."""
    if target == language:
        raise ValueError(f"the rows are in {language!r} already: give another target language")
    results = translate([r.text for r in rows], [language] * len(rows), [target], backend, guard)
    outcomes = []
    for row, per_target in zip(rows, results, strict=True):
        result = per_target[target]
        outcomes.append(
            TextOutcome(
                row.line,
                row.id,
                row.text,
                result.text,
                result.reason or "kept",
                result.reason,
                result.answer,
            )
        )
    return outcomes
