"""A malformed catalog fails with a message naming the file and the field."""

import pytest

from pipeline.sources.catalog import CatalogError, load_catalog


def write(tmp_path, text):
    (tmp_path / "audio").mkdir(exist_ok=True)
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    return path


GOOD = """
sources:
  - name: radio
    kind: local
    path: audio
    license: CC BY 4.0
    attribution: Example Radio
    languages: [en, it]
"""


def test_a_valid_catalog_resolves_paths_against_its_folder(tmp_path):
    (source,) = load_catalog(write(tmp_path, GOOD))
    assert source.path == (tmp_path / "audio").resolve()
    assert source.languages == ("en", "it")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("name: radio", "name: Radio Uno"), "sources[0].name"),
        (("kind: local", "kind: ftp"), "kind: unknown kind 'ftp'"),
        (("path: audio", "path: missing"), "path:"),
        (("    license: CC BY 4.0\n", ""), "missing required field 'license'"),
        (("languages: [en, it]", "languages: [english]"), "languages"),
        (("languages: [en, it]", "languages: en"), "languages: expected list"),
        (("attribution: Example Radio", "attribution: x\n    colour: red"), "unknown field"),
    ],
)
def test_malformed_entries_name_the_file_and_field(tmp_path, change, message):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(CatalogError) as error:
        load_catalog(path)
    assert str(path) in str(error.value)
    assert message in str(error.value)


def test_invalid_yaml_and_duplicate_names_are_reported(tmp_path):
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(write(tmp_path, "sources: [\n"))
    twice = GOOD + GOOD.split("sources:")[1]
    with pytest.raises(CatalogError, match="unique"):
        load_catalog(write(tmp_path, twice))
