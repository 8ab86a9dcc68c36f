"""`kind: hf` — a Hugging Face dataset: a hub id (`dataset`, with `config` and `split`) when
online, or a local folder / Parquet file (`path`) with an `Audio` column.

Rows are streamed (`streaming=True`), never loaded whole, and the audio is taken as its
encoded bytes (`Audio(decode=False)`): decoding is the standardise stage's work. The licence
comes from the catalog, else from a `license` column, else from the dataset card.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.sources.base import (
    SourceItem,
    SourceReadError,
    resolve_inside,
    stated_language,
    stated_license,
)
from pipeline.sources.catalog import Source
from pipeline.strict_yaml import StrictYamlError, load_yaml

_TEXT_COLUMNS = ("text", "sentence", "transcription", "transcript", "normalized_text")
_LANGUAGE_COLUMNS = ("language", "lang", "locale")


def card_license(source: Source) -> str | None:
    """The `license:` of the dataset card (README.md front matter), if there is one."""
    if "dataset" in source.options:
        from huggingface_hub import DatasetCard

        try:
            metadata = DatasetCard.load(source.options["dataset"]).data.to_dict()
        except Exception as error:  # offline, gated, missing: say so, refuse nothing silently
            raise SourceReadError(f"cannot read the dataset card: {error}") from None
    else:
        folder = source.path if source.path.is_dir() else source.path.parent
        readme = folder / "README.md"
        if not readme.is_file() or not readme.read_text().startswith("---"):
            return None
        try:
            metadata = load_yaml(readme.read_text().split("---")[1]) or {}
        except StrictYamlError:
            return None
    stated = metadata.get("license") if isinstance(metadata, dict) else None
    if isinstance(stated, list):  # several licences on one card: only a person can tell which
        return " and ".join(str(s) for s in stated) if len(stated) > 1 else str(stated[0])
    return str(stated) if stated else None


def _open(source: Source):
    """The dataset as {split: streaming dataset}, its audio left encoded."""
    import datasets

    options = source.options
    if "dataset" in options:
        args: dict[str, Any] = {"path": options["dataset"], "name": options.get("config")}
    elif source.path.is_dir():
        args = {"path": str(source.path)}
    else:
        args = {"path": "parquet", "data_files": {"train": str(source.path)}}
    try:
        loaded = datasets.load_dataset(**args, split=options.get("split"), streaming=True)
    except Exception as error:  # the library raises many kinds; all mean "cannot read it"
        raise SourceReadError(f"cannot open the dataset: {error}") from None
    splits = {options["split"]: loaded} if "split" in options else dict(loaded)
    audio = options.get("audio_column", "audio")
    for name, split in splits.items():
        columns = split.column_names or list(split.features or ())
        if audio not in columns:
            raise SourceReadError(f"split {name!r} has no audio column {audio!r}: {columns}")
        splits[name] = split.cast_column(audio, datasets.Audio(decode=False))
    return splits


def read_hf(source: Source) -> Iterator[SourceItem]:
    card = None if source.license or source.license_by_path else card_license(source)
    root = None if source.path is None else (source.path if source.path.is_dir() else None)
    options = source.options
    for split, rows in _open(source).items():
        index = 0
        try:
            for index, row in enumerate(rows):
                yield _item(row, f"{split}/{index:08d}", options, root, card)
        except Exception as error:  # streaming reads files lazily: a corrupt one fails here
            raise SourceReadError(f"split {split!r}, row {index}: cannot read: {error}") from None


def _column(row: dict, chosen: str | None, candidates: tuple[str, ...]) -> str | None:
    names = (chosen,) if chosen else candidates
    value = next((row[n] for n in names if n in row and row[n] is not None), None)
    return value.strip() or None if isinstance(value, str) else None


def _item(row: dict, key: str, options: dict, root: Path | None, card: str | None) -> SourceItem:
    audio = row.get(options.get("audio_column", "audio")) or {}
    encoded, path, problem = audio.get("bytes"), None, None
    if not encoded:
        written = audio.get("path")
        if root is not None and isinstance(written, str):
            path, problem = resolve_inside(root, written)
        else:
            problem = "bad manifest row: no audio bytes"
    language, bad_lang = stated_language(
        _column(row, options.get("language_column"), _LANGUAGE_COLUMNS)
    )
    stated, bad_license = stated_license(row.get("license"))
    return SourceItem(
        key=key,
        path=path,
        audio=encoded or None,
        language=language,
        text=_column(row, options.get("text_column"), _TEXT_COLUMNS),
        license=stated or card,
        problem=problem or bad_lang or bad_license,
    )
