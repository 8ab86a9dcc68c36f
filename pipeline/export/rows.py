"""The rows that leave a workdir: kept segments with their audio, licences judged again, split.

Curation judged each source's licence when it ran; a policy can change before publishing, so
every exit asks the current policy again and leaves out (and reports) rows it now refuses.
Splits come from `split_of` on each row's speaker group, so every exit agrees with the training job.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from licenses import LicenseVerdict, judge_license
from manifests.views import SHARD_LIST, dataset_files
from pipeline.query.splits import DEFAULT_RATIOS, split_of
from pipeline.text.pnc import is_punctuated


class ExportError(ValueError):
    """A workdir or an export that cannot be used; the message names the file or field."""


@dataclass(frozen=True)
class Refusal:
    """Kept rows of one source that the current policy no longer allows."""

    source: str
    license: str
    reason: str
    rows: int


@dataclass
class KeptRows:
    """The kept rows of a workdir's dataset files, read one file at a time.

    `refusals` fills in as `tables()` runs: rows whose licence the policy refuses are left out.
    """

    workdir: Path
    policy: Path | None = None
    ratios: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_RATIOS))
    _verdicts: dict[str, LicenseVerdict] = field(default_factory=dict, repr=False)
    _refused: dict[Path, dict[tuple[str, str], int]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        if not (self.workdir / SHARD_LIST).exists():
            raise ExportError(f"{self.workdir}: holds no curation run; run `vaglio curate` first")

    @cached_property
    def files(self) -> list[Path]:
        """The dataset files that hold kept rows, as the manifest names them."""
        names = dataset_files(self.workdir)
        missing = [n for n in names if not (self.workdir / n).is_file()]
        if missing:
            raise ExportError(f"{self.workdir / missing[0]}: dataset file missing; run "
                              "`vaglio curate` again to rebuild it")  # fmt: skip
        return [self.workdir / n for n in names]

    def verdict(self, license_id: str) -> LicenseVerdict:
        if license_id not in self._verdicts:
            self._verdicts[license_id] = judge_license(license_id, self.policy)
        return self._verdicts[license_id]

    def tables(
        self, splits: Sequence[str] | None = None, columns: Sequence[str] | None = None
    ) -> Iterator[pa.Table]:
        """Each dataset file's allowed rows in `splits` (all when None), with a `split` column."""
        for path in self.files:
            table = self._read(path, columns)
            groups = (
                table["split_group"].to_pylist()
                if "split_group" in table.column_names
                else [None] * len(table)
            )
            recordings = table["recording_id"].to_pylist()
            split = pa.array([split_of(r, self.ratios, g) for r, g in zip(recordings, groups)])
            table = table.append_column("split", split)
            table = table.filter(self._allowed(path, table))
            if splits is not None:
                table = table.filter(pc.is_in(table["split"], pa.array(list(splits))))
            if len(table):
                yield table

    @staticmethod
    def _read(path: Path, columns: Sequence[str] | None) -> pa.Table:
        """`columns` of a dataset file, and what splits and licences are judged by; a file
        written before rows carried their split group has none."""
        if columns is None:
            return pq.read_table(path)
        present = set(pq.read_schema(path).names)
        judged = {"recording_id", "license", *({"split_group"} & present)}
        return pq.read_table(path, columns=sorted({*columns, *judged}))

    def _allowed(self, path: Path, table: pa.Table) -> pa.Array:
        """Judge each distinct licence once; count the refused rows per (source, licence)."""
        licenses = table["license"]
        refused_ids = [
            license_id
            for license_id in pc.unique(licenses).to_pylist()
            if not self.verdict(license_id).allowed
        ]
        allowed = pc.invert(pc.is_in(licenses, pa.array(refused_ids, licenses.type)))
        refused = table.filter(pc.invert(allowed))
        sources = (
            refused["source"]
            if "source" in refused.column_names
            else pa.nulls(len(refused), pa.string())
        )
        counts = (
            pa.table({"source": sources, "license": refused["license"]})
            .group_by(["source", "license"])
            .aggregate([([], "count_all")])
        )
        self._refused[path] = {  # set, not added: the files may be read more than once
            (source or "?", license_id): rows
            for source, license_id, rows in zip(
                counts["source"].to_pylist(),
                counts["license"].to_pylist(),
                counts["count_all"].to_pylist(),
            )
        }
        return allowed

    @property
    def refusals(self) -> list[Refusal]:
        total: dict[tuple[str, str], int] = {}
        for per_file in self._refused.values():
            for key, rows in per_file.items():
                total[key] = total.get(key, 0) + rows
        return [
            Refusal(source, license_id, self.verdict(license_id).reason, rows)
            for (source, license_id), rows in sorted(total.items())
        ]

    def share_alike(self, license_id: str) -> bool:
        return "share-alike" in self.verdict(license_id).obligations


@dataclass(frozen=True)
class Sample:
    """One kept segment, as the training-toolkit exports write it."""

    segment_id: str
    recording_id: str
    split: str
    lang: str
    text: str
    duration: float
    flac: bytes
    translations: tuple[tuple[str, str], ...]  # (target language, text), kept ones only
    source: str
    license: str
    attribution: str | None
    # (word, start, end), in seconds from the start of `flac`; empty where none were timed
    words: tuple[tuple[str, float, float], ...] = ()

    @property
    def pnc(self) -> str:
        """Canary's `pnc` flag: "yes" when the text carries punctuation and capitals."""
        return "yes" if is_punctuated(self.text) else "no"


def samples(kept: KeptRows, splits: Sequence[str] | None = None) -> Iterator[Sample]:
    for table in kept.tables(splits):
        audio = pc.struct_field(table["audio"], "bytes").to_pylist()
        columns = {name: table[name].to_pylist() for name in _SAMPLE_COLUMNS}
        # dataset files written before word timings have none
        timed = table["words"].to_pylist() if "words" in table.column_names else [None] * len(table)
        for index, flac in enumerate(audio):
            row = {name: values[index] for name, values in columns.items()}
            kept_translations = tuple((t["lang"], t["text"]) for t in row.pop("translations") or ())
            words = spelled_as_text(timed[index] or [], row["text"])
            yield Sample(flac=flac, translations=kept_translations, words=words, **row)


_SAMPLE_COLUMNS = ("segment_id", "recording_id", "split", "lang", "text", "duration",
                   "translations", "source", "license", "attribution")  # fmt: skip


def spelled_as_text(words: list[dict], text: str) -> tuple[tuple[str, float, float], ...]:
    """Timed words as (word, start, end), spelled as the row's text spells them where the two
    count the same words (the LLM restored punctuation and capitals but kept every word),
    else as pass 2 wrote them."""
    spelled = text.split()
    if len(spelled) != len(words):
        spelled = [w["text"] for w in words]
    return tuple((word, w["start"], w["end"]) for word, w in zip(spelled, words))


def member_name(segment_id: str) -> str:
    """A file name for a segment that every format accepts: letters, digits, `_` and `-`.

    NeMo's tarred reader treats `-subN` before the extension as a second entry for one member,
    so that pattern is broken up too.
    """
    name = re.sub(r"[^A-Za-z0-9_-]", "_", segment_id)
    return re.sub(r"-(sub\d)", r"_\1", name)
