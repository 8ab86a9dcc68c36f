"""Word and character error rates per language: how well an ASR backend does on your data.

Rates are corpus-level (all edits over all reference words or characters of a language), not
averages of per-utterance rates, so short utterances do not weigh more than long ones. Both
sides go through `normalise_text` first: case and punctuation are conventions of a
transcriber, not recognition errors. Characters are counted on the normalised text, spaces
between words included, as jiwer does.

A reference that is empty after normalisation ("", "[music]") has no words to get wrong; such
utterances are counted and skipped instead of turning every insertion into an infinite rate.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import jiwer
import pyarrow as pa
import pyarrow.parquet as pq

from manifests.views import connect
from pipeline.text.normalise import normalise_text

OVERALL = "overall"
"""The `lang` of the row that sums every language."""

UNKNOWN_LANG = "und"
"""BCP 47 "undetermined": the language of a row that does not say."""

PAIR_COLUMNS = ("reference", "hypothesis", "lang")
REFERENCE_COLUMNS = ("segment_id", "reference")
FORMATS = {
    ".tsv": "tsv",
    ".csv": "csv",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


class EvaluationError(ValueError):
    """Input that cannot be scored; the message names the file and what is wrong."""


class Pair(NamedTuple):
    """One utterance: its language, what was said and what the ASR heard."""

    lang: str
    reference: str
    hypothesis: str


@dataclass(frozen=True)
class Score:
    """Error counts of one language (or of all, `lang == OVERALL`)."""

    lang: str
    utterances: int  # scored, i.e. with a non-empty reference
    words: int  # reference words
    chars: int  # reference characters
    word_errors: int  # substitutions + deletions + insertions
    char_errors: int
    empty_references: int  # skipped

    @property
    def wer(self) -> float | None:
        return self.word_errors / self.words if self.words else None

    @property
    def cer(self) -> float | None:
        return self.char_errors / self.chars if self.chars else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "lang": self.lang,
            "utterances": self.utterances,
            "words": self.words,
            "chars": self.chars,
            "word_errors": self.word_errors,
            "char_errors": self.char_errors,
            "wer": self.wer,
            "cer": self.cer,
            "empty_references": self.empty_references,
        }


def _edits(output: jiwer.WordOutput | jiwer.CharacterOutput) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference length) of a jiwer alignment."""
    errors = output.substitutions + output.deletions + output.insertions
    return errors, output.hits + output.substitutions + output.deletions


def score_language(lang: str, pairs: Iterable[Pair]) -> Score:
    """Corpus-level counts of `pairs`, all taken to be in `lang`."""
    references: list[str] = []
    hypotheses: list[str] = []
    empty = 0
    for pair in pairs:
        reference = normalise_text(pair.reference)
        if not reference:
            empty += 1
            continue
        references.append(reference)
        hypotheses.append(normalise_text(pair.hypothesis))
    if not references:
        return Score(lang, 0, 0, 0, 0, 0, empty)
    word_errors, words = _edits(jiwer.process_words(references, hypotheses))
    char_errors, chars = _edits(jiwer.process_characters(references, hypotheses))
    return Score(lang, len(references), words, chars, word_errors, char_errors, empty)


_COUNTS = ("utterances", "words", "chars", "word_errors", "char_errors", "empty_references")


def score(pairs: Iterable[Pair | tuple[str, str, str]]) -> list[Score]:
    """One `Score` per language, sorted by language, then the `OVERALL` one."""
    by_lang: dict[str, list[Pair]] = {}
    for pair in pairs:
        pair = Pair(*pair)
        by_lang.setdefault(pair.lang, []).append(pair)
    scores = [score_language(lang, by_lang[lang]) for lang in sorted(by_lang)]
    total = Score(OVERALL, *(sum(getattr(s, field) for s in scores) for field in _COUNTS))
    return [*scores, total]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _lang(value: Any) -> str:
    return _text(value).strip() or UNKNOWN_LANG


def read_rows(path: Path, required: Iterable[str]) -> list[dict[str, Any]]:
    """The rows of a TSV, CSV, Parquet or JSON-lines file, which must have `required` columns.

    TSV fields are taken literally (no quoting), as in Common Voice's files, so a transcript
    may contain quotes; CSV follows the usual quoting rules.
    """
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(FORMATS)
        raise EvaluationError(f"{path}: unknown file type {path.suffix!r} (known: {known})")
    if not path.is_file():
        raise EvaluationError(f"{path}: no such file")
    try:
        columns, rows = _read(path, kind)
    except (OSError, UnicodeDecodeError, csv.Error, json.JSONDecodeError, pa.ArrowException) as e:
        raise EvaluationError(f"{path}: cannot read it as {kind}: {e}") from None
    for column in required:
        if column not in columns:
            found = ", ".join(columns) or "none"
            raise EvaluationError(f"{path}: no column {column!r} (columns: {found})")
    return rows


def _read(path: Path, kind: str) -> tuple[list[str], list[dict[str, Any]]]:
    """(column names, rows) of a file of `kind`."""
    if kind == "parquet":
        table = pq.read_table(path)
        return table.column_names, table.to_pylist()
    if kind == "jsonl":
        with path.open(encoding="utf-8") as lines:
            rows = [json.loads(line) for line in lines if line.strip()]
        if not all(isinstance(row, dict) for row in rows):
            raise EvaluationError(f"{path}: every line must be a JSON object")
        columns = list(dict.fromkeys(key for row in rows for key in row))
        return columns, rows
    with path.open(encoding="utf-8", newline="") as file:
        if kind == "tsv":
            reader = csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            reader = csv.DictReader(file)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def read_pairs(path: Path) -> list[Pair]:
    """Pairs from a file with `reference`, `hypothesis` and `lang` columns."""
    rows = read_rows(path, PAIR_COLUMNS)
    return [Pair(_lang(r["lang"]), _text(r["reference"]), _text(r["hypothesis"])) for r in rows]


@dataclass(frozen=True)
class Joined:
    """References matched with a workdir's transcripts, and what could not be matched."""

    pairs: list[Pair]
    unmatched: int  # references whose segment_id is not in the workdir
    dropped: int  # references of dropped segments, left out unless asked for


def read_workdir_pairs(references: Path, workdir: Path, all_rows: bool = False) -> Joined:
    """Pairs of a references file and the `segments` of a curated workdir, by `segment_id`.

    The hypothesis is the segment's `text`; the language is the references' `lang` where they
    give one, else the segment's. Dropped segments are left out unless `all_rows`, so the
    rates describe the data that training will see.
    """
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise EvaluationError(f"{workdir}: no such workdir")
    rows = read_rows(references, REFERENCE_COLUMNS)
    seen: set[str] = set()
    for row in rows:
        segment_id = _text(row["segment_id"])
        if segment_id in seen:
            raise EvaluationError(f"{references}: segment_id {segment_id!r} appears twice")
        seen.add(segment_id)
    refs = pa.table(
        {
            "segment_id": [_text(r["segment_id"]) for r in rows],
            "reference": [_text(r["reference"]) for r in rows],
            "lang": [_text(r.get("lang")).strip() for r in rows],
        }
    )
    try:
        con = connect(workdir)
        con.register("refs", refs)
        joined = con.execute(
            """
            SELECT coalesce(nullif(r.lang, ''), s.lang) AS lang, r.reference, s.text,
                   s.segment_id IS NULL AS unmatched, s.drop_reason IS NOT NULL AS dropped
            FROM refs r LEFT JOIN segments s USING (segment_id)
            """
        ).fetchall()
    except duckdb.Error as e:
        raise EvaluationError(f"{workdir}: cannot read its segments: {e}") from None
    unmatched = sum(missing for *_, missing, _ in joined)
    dropped = sum(was_dropped for *_, was_dropped in joined)
    pairs = [
        Pair(_lang(lang), reference, _text(text))
        for lang, reference, text, missing, was_dropped in joined
        if not missing and (all_rows or not was_dropped)
    ]
    if not pairs and rows:
        raise EvaluationError(
            f"{references}: no segment_id matches a "
            f"{'' if all_rows else 'kept '}segment of {workdir}"
        )
    return Joined(pairs, unmatched, dropped)


def read_source_pairs(workdir: Path) -> list[Pair]:
    """The transcript each recording came with (`text_source`) against its pseudo-labels.

    A source's transcript covers the whole recording (or window), so the hypothesis is the
    text of all its segments in time order, dropped ones included: this measures how far the
    pseudo-labels are from what the source says, not what training will see.
    """
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise EvaluationError(f"{workdir}: no such workdir")
    try:
        rows = (
            connect(workdir)
            .execute(
                """
            SELECT coalesce(any_value(s.lang), r.declared_languages[1]) AS lang, r.text_source,
                   string_agg(s.text, ' ' ORDER BY s."offset") AS text
            FROM recordings r JOIN segments_all s USING (recording_id)
            WHERE r.text_source IS NOT NULL
            GROUP BY r.recording_id, r.text_source, r.declared_languages
            """
            )
            .fetchall()
        )
    except duckdb.Error as e:
        raise EvaluationError(f"{workdir}: cannot read its recordings: {e}") from None
    if not rows:
        raise EvaluationError(f"{workdir}: no recording with both a source transcript and segments")
    return [Pair(_lang(lang), _text(reference), _text(text)) for lang, reference, text in rows]
