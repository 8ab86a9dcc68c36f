"""The source catalog: a YAML list of speech sources, validated with errors that name the field.

Each `kind` is read by its own reader (`pipeline/sources/`); the catalog only checks that an
entry carries the fields its kind needs, with the right types, and resolves paths against
the catalog's folder.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.strict_yaml import StrictYamlError, read_yaml
from pipeline.text.languages import MULTIPLE_LANGUAGES, is_language_code

SOURCE_KINDS = ("local", "nemo", "lhotse", "commonvoice", "hf", "metadata")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_TOP_LEVEL_KEYS = ("sources",)
MAX_FILES_PER_SHARD = 1_000_000  # a shard is a unit of work and of memory: far beyond any use


class CatalogError(ValueError):
    """A malformed catalog; the message names the file and the offending field."""


@dataclass(frozen=True)
class Source:
    """One entry of the catalog."""

    name: str
    kind: str
    path: Path | None  # a folder or a manifest file, by kind; None for `metadata` and hub datasets
    license: str  # the statement for every file, unless `license_by_path` or the file says else
    attribution: str
    languages: tuple[str, ...]
    hours: tuple[tuple[str, float], ...] = ()  # `metadata`: (language or "mul", hours)
    labelled: bool | None = None  # whether transcripts come with the audio
    license_by_path: tuple[tuple[str, str], ...] = ()  # (glob over file keys, statement)
    options: dict[str, Any] = field(default_factory=dict)  # kind-specific fields, validated
    files_per_shard: int | None = None  # overrides the config's: thousands of short clips

    def license_for(self, key: str, stated: str | None = None) -> str:
        """The licence statement of one file: its own, else the first matching glob, else the
        source's. A source with several licences (per split or per file) is judged per file."""
        if stated:
            return stated
        for pattern, text in self.license_by_path:
            if fnmatch.fnmatchcase(key, pattern):
                return text
        return self.license


# Fields each kind accepts beyond the common ones, with the type each must have.
# "dir"/"file" are paths that must exist; "path" may be either.
_COMMON = {"name", "kind", "license", "attribution", "languages", "labelled", "files_per_shard"}
_KIND_FIELDS: dict[str, dict[str, Any]] = {
    "local": {"path": "dir"},
    "nemo": {"path": "file", "root": "dir"},
    "lhotse": {"path": "path", "supervisions": "file", "root": "dir"},
    "commonvoice": {"path": "dir", "splits": list},
    "hf": {
        "path": "path",
        "dataset": str,
        "config": str,
        "split": str,
        "audio_column": str,
        "text_column": str,
        "language_column": str,
    },
    "metadata": {"hours": object},
}
_REQUIRED_PATH = {"local", "nemo", "lhotse", "commonvoice"}


def _field(entry: dict, key: str, where: str, kind: type = str):
    if key not in entry or entry[key] in (None, ""):
        raise CatalogError(f"{where}: missing required field '{key}'")
    value = entry[key]
    if not isinstance(value, kind):
        raise CatalogError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return value


def _parse_source(entry: object, where: str, base: Path) -> Source:
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: expected a mapping of fields, got {entry!r}")
    name = _field(entry, "name", where)
    if not _NAME.match(name):
        raise CatalogError(f"{where}.name: {name!r} must match [a-z0-9-] (lower case, no spaces)")
    where = f"{where} ({name})"
    kind = _field(entry, "kind", where)
    if kind not in SOURCE_KINDS:
        raise CatalogError(f"{where}.kind: unknown kind {kind!r}; known: {', '.join(SOURCE_KINDS)}")
    unknown = set(entry) - _COMMON - set(_KIND_FIELDS[kind])
    if unknown:
        listed = ", ".join(sorted(unknown))
        raise CatalogError(f"{where}: unknown field(s) {listed} for kind {kind}")
    languages = _languages(_field(entry, "languages", where, list), where)
    labelled = entry.get("labelled")
    if labelled is not None and not isinstance(labelled, bool):
        raise CatalogError(f"{where}.labelled: expected true or false, got {labelled!r}")
    per_shard = entry.get("files_per_shard")
    if per_shard is not None and (
        type(per_shard) is not int or not 1 <= per_shard <= MAX_FILES_PER_SHARD
    ):
        raise CatalogError(
            f"{where}.files_per_shard: expected a whole number from 1 to "
            f"{MAX_FILES_PER_SHARD:,}, got {per_shard!r}"
        )
    options = _options(entry, kind, where, base)
    license_text, license_by_path = _license(entry, kind, where)
    return Source(
        name=name,
        kind=kind,
        path=options.pop("path", None),
        license=license_text,
        attribution=_field(entry, "attribution", where),
        languages=languages,
        hours=_hours(entry, where, languages) if kind == "metadata" else (),
        labelled=labelled,
        license_by_path=license_by_path,
        options=options,
        files_per_shard=per_shard,
    )


def _languages(values: list, where: str) -> tuple[str, ...]:
    for lang in values:
        if not isinstance(lang, str) or not is_language_code(lang):
            raise CatalogError(
                f"{where}.languages: {lang!r} is not an ISO 639 code (like 'en' or 'fra')"
            )
    return tuple(values)


def _license(entry: dict, kind: str, where: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """`license: CC BY 4.0`, or `license: {"train/*": CC BY 4.0, "*": CC BY-NC 4.0}` for
    sources whose files differ; an `hf` dataset may leave it to its dataset card."""
    value = entry.get("license")
    if value in (None, "") and kind == "hf":
        return "", ()
    if isinstance(value, dict) and value:
        if not all(isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()):
            raise CatalogError(f"{where}.license: expected {{glob: licence statement}} strings")
        return "", tuple(value.items())
    return _field(entry, "license", where), ()


def _options(entry: dict, kind: str, where: str, base: Path) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, expected in _KIND_FIELDS[kind].items():
        if key == "hours" or entry.get(key) in (None, ""):
            continue
        if expected in ("dir", "file", "path"):
            options[key] = _existing_path(entry, key, expected, where, base)
        else:
            options[key] = _field(entry, key, where, expected)
    if kind in _REQUIRED_PATH and "path" not in options:
        _field(entry, "path", where)
    if kind == "lhotse" and options.get("path", Path()).is_dir() and "supervisions" in options:
        raise CatalogError(
            f"{where}.supervisions: with a folder as path, each split's "
            "supervisions are found beside its recordings"
        )
    if kind == "hf" and ("path" in options) == ("dataset" in options):
        raise CatalogError(f"{where}: an hf source needs exactly one of 'path' or 'dataset'")
    if not all(isinstance(s, str) for s in options.get("splits", [])):
        raise CatalogError(f"{where}.splits: expected a list of split names like [train, dev]")
    return options


def _existing_path(entry: dict, key: str, expected: str, where: str, base: Path) -> Path:
    path = Path(_field(entry, key, where)).expanduser()
    path = path if path.is_absolute() else (base / path)
    exists = {"dir": path.is_dir, "file": path.is_file, "path": path.exists}[expected]()
    if not exists:
        what = {"dir": "a directory", "file": "a file", "path": "a file or directory"}[expected]
        raise CatalogError(f"{where}.{key}: {path} is not {what}")
    return path.resolve()


def _hours(entry: dict, where: str, languages: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    """`hours: 360` (all declared languages together) or `hours: {en: 300, it: 60}`."""
    value = entry.get("hours")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = {languages[0] if len(languages) == 1 else MULTIPLE_LANGUAGES: value}
    if not isinstance(value, dict) or not value:
        raise CatalogError(
            f"{where}.hours: a metadata source needs its hours, as a number or as "
            f"{{language: hours}}; got {value!r}"
        )
    for lang, hours in value.items():
        if lang != MULTIPLE_LANGUAGES and lang not in languages:
            raise CatalogError(f"{where}.hours: {lang!r} is not one of the declared languages")
        if (
            not isinstance(hours, (int, float))
            or isinstance(hours, bool)
            or not math.isfinite(hours)
            or hours < 0
        ):
            raise CatalogError(f"{where}.hours.{lang}: expected a finite number ≥ 0, got {hours!r}")
    return tuple((lang, float(hours)) for lang, hours in value.items())


def load_catalog(path: Path) -> list[Source]:
    """Read and validate a catalog file; relative source paths resolve against its folder."""
    path = Path(path)
    try:
        data = read_yaml(path)
    except FileNotFoundError:
        raise CatalogError(f"{path}: catalog file not found") from None
    except OSError as error:
        raise CatalogError(f"{path}: cannot read the catalog: {error.strerror}") from None
    except StrictYamlError as error:
        raise CatalogError(f"{path}: not valid YAML: {error}") from None
    if isinstance(data, dict) and (unknown := sorted(map(str, set(data) - {*_TOP_LEVEL_KEYS}))):
        raise CatalogError(f"{path}: unknown top-level key(s) {', '.join(unknown)}; a catalog "
                           "has only 'sources:'")  # fmt: skip
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
        raise CatalogError(f"{path}: expected a top-level 'sources:' list")
    if not data["sources"]:
        raise CatalogError(f"{path}: 'sources:' is empty: nothing to curate or survey")
    sources = [
        _parse_source(entry, f"{path}: sources[{i}]", path.parent)
        for i, entry in enumerate(data["sources"])
    ]
    names = [s.name for s in sources]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise CatalogError(f"{path}: source names must be unique; repeated: {duplicated}")
    return sources
