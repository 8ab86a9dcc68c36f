"""The source catalog: a YAML list of speech sources, validated with errors that name the field."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

SOURCE_KINDS = ("local", "metadata")
MULTIPLE_LANGUAGES = "mul"  # ISO 639-2: hours given for several languages together
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_LANG = re.compile(r"^[a-z]{2,3}$")


class CatalogError(ValueError):
    """A malformed catalog; the message names the file and the offending field."""


@dataclass(frozen=True)
class Source:
    """One entry of the catalog."""

    name: str
    kind: str
    path: Path | None  # None for `metadata` sources: nothing downloaded yet
    license: str
    attribution: str
    languages: tuple[str, ...]
    hours: tuple[tuple[str, float], ...] = ()  # `metadata`: (language or "mul", hours)
    labelled: bool | None = None  # whether transcripts come with the audio

    def audio_files(self) -> list[Path]:
        """Audio files under the source folder, sorted so shards are stable across runs."""
        if self.path is None:
            return []
        return sorted(
            p for p in self.path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
        )


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
    languages = _field(entry, "languages", where, list)
    for lang in languages:
        if not isinstance(lang, str) or not _LANG.match(lang):
            raise CatalogError(f"{where}.languages: {lang!r} is not an ISO 639 code like 'en'")
    unknown = set(entry) - _FIELDS[kind]
    if unknown:
        raise CatalogError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    labelled = entry.get("labelled")
    if labelled is not None and not isinstance(labelled, bool):
        raise CatalogError(f"{where}.labelled: expected true or false, got {labelled!r}")
    return Source(
        name=name,
        kind=kind,
        path=None if kind == "metadata" else _directory(entry, where, base),
        license=_field(entry, "license", where),
        attribution=_field(entry, "attribution", where),
        languages=tuple(languages),
        hours=_hours(entry, where, languages) if kind == "metadata" else (),
        labelled=labelled,
    )


_COMMON = {"name", "kind", "license", "attribution", "languages", "labelled"}
_FIELDS = {"local": _COMMON | {"path"}, "metadata": _COMMON | {"hours"}}


def _directory(entry: dict, where: str, base: Path) -> Path:
    path = Path(_field(entry, "path", where)).expanduser()
    path = path if path.is_absolute() else (base / path)
    if not path.is_dir():
        raise CatalogError(f"{where}.path: {path} is not a directory")
    return path.resolve()


def _hours(entry: dict, where: str, languages: list[str]) -> tuple[tuple[str, float], ...]:
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
        if not isinstance(hours, (int, float)) or isinstance(hours, bool) or hours < 0:
            raise CatalogError(f"{where}.hours.{lang}: expected a non-negative number")
    return tuple((lang, float(hours)) for lang, hours in value.items())


def load_catalog(path: Path) -> list[Source]:
    """Read and validate a catalog file; relative source paths resolve against its folder."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise CatalogError(f"{path}: catalog file not found") from None
    except yaml.YAMLError as error:
        raise CatalogError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
        raise CatalogError(f"{path}: expected a top-level 'sources:' list")
    sources = [
        _parse_source(entry, f"{path}: sources[{i}]", path.parent)
        for i, entry in enumerate(data["sources"])
    ]
    names = [s.name for s in sources]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise CatalogError(f"{path}: source names must be unique; repeated: {duplicated}")
    return sources
