"""The source catalog: a YAML list of speech sources, validated with errors that name the field."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

SOURCE_KINDS = ("local",)
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
    path: Path
    license: str
    attribution: str
    languages: tuple[str, ...]

    def audio_files(self) -> list[Path]:
        """Audio files under the source folder, sorted so shards are stable across runs."""
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
    path = Path(_field(entry, "path", where)).expanduser()
    path = path if path.is_absolute() else (base / path)
    if not path.is_dir():
        raise CatalogError(f"{where}.path: {path} is not a directory")
    languages = _field(entry, "languages", where, list)
    for lang in languages:
        if not isinstance(lang, str) or not _LANG.match(lang):
            raise CatalogError(f"{where}.languages: {lang!r} is not an ISO 639 code like 'en'")
    unknown = set(entry) - {"name", "kind", "path", "license", "attribution", "languages"}
    if unknown:
        raise CatalogError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    return Source(
        name=name,
        kind=kind,
        path=path.resolve(),
        license=_field(entry, "license", where),
        attribution=_field(entry, "attribution", where),
        languages=tuple(languages),
    )


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
