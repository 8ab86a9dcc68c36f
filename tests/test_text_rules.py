"""The hallucination filter as a user meets it: real Whisper inventions in five languages are
dropped with a reason that names the rule, good sentences are kept, and `vaglio filter-text`
gives the same verdicts without audio."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from manifests.schemas import MANIFEST
from manifests.views import connect
from pipeline.cli import app
from pipeline.run.summary import summarize
from pipeline.stage import StageConfigError
from pipeline.stages.filter import DROP_REASONS, FilterConfig, judge
from pipeline.text.lid import TextLidConfig
from pipeline.text.rules import HallucinationConfig, hallucination_reason, words

FILTER = FilterConfig()
runner = CliRunner()

WHISPER_HALLUCINATIONS = [
    # (audio language, what Whisper wrote, seconds of audio, the rule that must name it)
    ("en", "Thank you for watching!", 3.0, "known_hallucination"),
    ("en", " Thanks for watching!", 1.5, "known_hallucination"),
    ("en", "Please subscribe.", 2.0, "known_hallucination"),
    ("en", "Subtitles by the Amara.org community", 4.0, "known_hallucination"),
    ("en", " you", 1.0, "known_hallucination"),
    ("en", "Thank you. Thank you. Thank you.", 5.0, "known_hallucination"),
    ("it", "Sottotitoli creati dalla comunità Amara.org", 5.0, "known_hallucination"),
    ("it", "Sottotitoli a cura di QTSS", 3.0, "known_hallucination"),
    ("it", "Grazie per la visione!", 2.0, "known_hallucination"),
    ("it", "Thank you.", 1.0, "known_hallucination"),  # English stock phrases, any language
    ("de", "Untertitel der Amara.org-Community", 3.0, "known_hallucination"),
    ("de", "Untertitel im Auftrag des ZDF, 2017", 3.0, "known_hallucination"),
    ("de", "Untertitel im Auftrag des ZDF für funk, 2019", 4.0, "known_hallucination"),
    ("de", "Vielen Dank fürs Zuschauen!", 2.0, "known_hallucination"),
    ("fr", "Sous-titres réalisés para la communauté d'Amara.org", 4.0, "known_hallucination"),
    ("fr", "Merci d’avoir regardé !", 2.0, "known_hallucination"),
    ("fr", "Sous-titrage ST' 501", 2.0, "known_hallucination"),
    ("es", "Subtítulos realizados por la comunidad de Amara.org", 4.0, "known_hallucination"),
    ("es", "¡Gracias por ver el video!", 2.0, "known_hallucination"),
    ("es", "¡Suscríbete!", 1.0, "known_hallucination"),
    ("en", "[Music]", 10.0, "empty_text"),
    ("de", "(Musik)", 10.0, "empty_text"),
    ("fr", "♪ ♪", 8.0, "empty_text"),
    ("en", "the the the the the the the the the the", 5.0, "repeated_words"),
    (
        "en",
        "I'm going to go to the store. I'm going to go to the store. I'm going to go to the store.",
        8.0,
        "repeated_words",
    ),
    ("it", "e poi e poi e poi siamo andati a casa di Marco", 4.0, "repeated_ngrams"),
    ("de", "ja ja ja ja ja ja", 3.0, "repeated_ngrams"),
    (
        "es",
        "y entonces dijo que no quería venir a la fiesta y entonces dijo que no quería venir "
        "a la fiesta y entonces dijo que no quería venir a la fiesta porque tenía mucho trabajo "
        "en casa",
        12.0,
        "repeated_ngrams",
    ),
    ("en", "Ooooooooooooooooooooooooooooooh", 2.0, "long_word"),
    ("it", "ahahahahahahahahahahahahahahahah", 3.0, "long_word"),
    ("fr", "et alors oooooooooooooooooooooh", 2.0, "long_word"),
    (
        "en",
        "So the history of the city and the river is a long and complicated one",
        0.8,
        "chars_per_second_high",
    ),
    ("en", "I am a man of the day", 1.0, "words_per_second_high"),
    ("en", "Okay.", 20.0, "chars_per_second_low"),
    ("it", "The weather is lovely today and we are going to the beach.", 4.0, "lang_mismatch"),
]

GOOD_SENTENCES = [
    ("en", "The committee will meet again on Thursday to discuss the budget.", 4.0),
    ("en", "Thank you for watching the game with me last night, it was great fun.", 4.5),
    ("en", "Thank you, Madam President, for giving me the floor.", 3.5),
    ("en", "Please subscribe to the newsletter if you want the minutes of the meeting.", 4.5),
    ("en", "No, no, no, that is not what I said.", 2.5),
    ("en", "Oh, congratulations!", 1.5),
    ("es", "Desafortunadamente, no.", 1.5),
    ("it", "Il treno per Milano parte alle otto dal secondo binario.", 3.5),
    ("it", "Grazie per la visione del documento, ne parleremo domani in commissione.", 4.5),
    ("it", "Sì.", 0.6),
    ("de", "Die Datenschutzgrundverordnung gilt seit Mai.", 3.0),
    (
        "de",
        "Die Donaudampfschifffahrtsgesellschaft wurde achtzehnhundertneunundzwanzig gegründet.",
        5.0,
    ),
    ("de", "Vielen Dank fürs Zuschauen und bis morgen beim Training im Stadion.", 4.0),
    ("fr", "Le conseil municipal se réunira jeudi prochain pour voter le budget.", 4.0),
    ("fr", "Merci d'avoir regardé le match avec nous hier soir au stade.", 3.5),
    ("es", "El tren hacia Sevilla sale a las ocho desde el andén dos.", 3.5),
    ("es", "Gracias por ver el video que preparamos para la clase de historia.", 4.0),
]


@pytest.mark.parametrize(("lang", "text", "duration", "reason"), WHISPER_HALLUCINATIONS)
def test_whisper_hallucinations_are_dropped_by_the_rule_that_fits(lang, text, duration, reason):
    assert judge(text, duration, lang, FILTER).drop_reason == reason


@pytest.mark.parametrize(("lang", "text", "duration"), GOOD_SENTENCES)
def test_good_sentences_are_kept(lang, text, duration):
    verdict = judge(text, duration, lang, FILTER)
    assert verdict.drop_reason is None
    assert verdict.text_lang == lang or len(text.split()) < 3  # LID guesses on short texts


def test_compound_words_follow_the_reference_where_asked():
    text = "Die Datenschutzgrundverordnung gilt seit Mai."
    reference = HallucinationConfig(compound_languages="")  # Granary: 25 characters for all
    assert hallucination_reason(words(text), 3.0, "de", reference) == "long_word"
    assert hallucination_reason(words(text), 3.0, "de", HallucinationConfig()) is None
    monster = "Rindfleischetikettierungsüberwachungsaufgabenübertragungsgesetz"
    compound = words(f"Das {monster}.")
    assert hallucination_reason(compound, 4.0, "de", HallucinationConfig()) == "long_word"


def test_every_threshold_is_a_setting():
    loose = HallucinationConfig(
        max_word_chars=40, min_chars_per_second=0.0, max_words_per_second=10.0
    )
    assert hallucination_reason(words("Ooooooooooooooooooooooooooooooh"), 2.0, "en", loose) is None
    assert hallucination_reason(words("Okay."), 20.0, "en", loose) is None
    assert hallucination_reason(words("I am a man of the day"), 1.0, "en", loose) is None


def test_users_add_phrases_for_any_language(tmp_path):
    (tmp_path / "pt.txt").write_text("# Portuguese\nObrigado por assistir.\n", encoding="utf-8")
    rules = HallucinationConfig(phrases_dir=str(tmp_path))
    assert hallucination_reason(words("Obrigado por assistir!"), 2.0, "pt", rules) == (
        "known_hallucination"
    )
    thanks = words("Obrigado por assistir!")
    assert hallucination_reason(thanks, 2.0, "pt", HallucinationConfig()) is None
    with pytest.raises(StageConfigError, match="not a folder"):
        HallucinationConfig(phrases_dir=str(tmp_path / "missing"))


def test_a_fasttext_model_that_is_not_there_is_refused_before_any_work(tmp_path):
    with pytest.raises(StageConfigError, match=r"lid\.176\.bin is not a file"):
        TextLidConfig(fasttext_model=str(tmp_path / "lid.176.bin"))


def test_pass_disagreement_comes_last_and_only_with_two_passes():
    text = "The committee will meet again on Thursday to discuss the budget."
    assert judge(text, 4.0, "en", FILTER, pass_wer=0.9).drop_reason == "pass_disagreement"
    assert judge("Thanks for watching!", 2.0, "en", FILTER, pass_wer=0.9).drop_reason == (
        "known_hallucination"
    )
    assert judge(text, 60.0, "en", FILTER).drop_reason == "duration_out_of_range"


def filter_text(*args: str, stdin: str | bytes | None = None):
    return runner.invoke(app, ["filter-text", *args], input=stdin)


ROWS = "duration\ttext\n2.0\tThanks for watching!\n3.5\tWe met at the old station at noon.\n"


def test_filter_text_prints_json_lines_with_the_drop_reason():
    result = filter_text("--lang", "en", "--format", "json", stdin=ROWS)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["text"], r["drop_reason"]) for r in rows] == [
        ("Thanks for watching!", "known_hallucination"),
        ("We met at the old station at noon.", None),
    ]
    assert rows[1]["duration"] == 3.5 and rows[1]["text_lang"] == "en"
    assert "kept 1 of 2, known_hallucination 1" in result.stderr


def test_filter_text_reads_a_file_and_prints_a_table(tmp_path):
    path = tmp_path / "rows.tsv"
    path.write_text(ROWS + "20\tOkay.\n", encoding="utf-8")
    result = filter_text("--lang", "en", str(path))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("known_hallucination" in line and "Thanks for watching" in line for line in lines)
    assert any("chars_per_second_low" in line and "Okay." in line for line in lines)
    (kept,) = [line for line in lines if "We met at the old station" in line]
    assert not any(reason in kept for reason in DROP_REASONS)
    assert "kept 1 of 3" in result.stderr


def test_filter_text_thresholds_come_from_the_curate_config(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text("filter: {rules: {min_chars_per_second: 0}}\n")
    rows = "20\tOkay.\n"
    assert "chars_per_second_low" in filter_text("-l", "en", "-f", "json", stdin=rows).stdout
    result = filter_text("-l", "en", "-f", "json", "-c", str(config), "-", stdin=rows)
    assert json.loads(result.stdout)["drop_reason"] is None
    config.write_text("filter: {text_lid: {fasttext_model: /nowhere/lid.176.bin}}\n")
    result = filter_text("-l", "en", "-c", str(config), stdin=rows)
    assert result.exit_code == 2 and "/nowhere/lid.176.bin is not a file" in result.stderr


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("2.0\tgood\nno tab here\n", "line 2: expected duration<TAB>text"),
        ("2.0\tgood\n\nabc\ttext\n", "line 3: duration 'abc' is not a number"),
        ("-1\ttext\n", "line 1: duration '-1' is not a number"),
        (b"2.0\tgood\n3.0\t\xff caff\xe8\n", "line 2: not UTF-8 text (byte 0xff"),
    ],
)
def test_filter_text_names_the_line_it_cannot_read(rows, message):
    result = filter_text("--lang", "en", stdin=rows)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_every_drop_reason_is_counted_in_the_summary_and_in_sql(tmp_path):
    reasons = ["known_hallucination", "known_hallucination", "long_word", None]
    rows = [
        {"segment_id": f"s/a.wav#{i}", "recording_id": "s/a.wav", "source": "s",
         "license": "CC0-1.0", "offset": float(i), "duration": 3600.0, "lang": "en",
         "drop_reason": reason}
        for i, reason in enumerate(reasons)
    ]  # fmt: skip
    (tmp_path / "shard").mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=MANIFEST), tmp_path / "shard" / "s1.parquet")
    (tmp_path / "shards.json").write_text('["s1"]')
    dropped = summarize(tmp_path).dropped
    assert list(dropped) == list(DROP_REASONS)
    assert dropped["known_hallucination"] == (2, 2.0)
    assert dropped["long_word"] == (1, 1.0)
    assert dropped["lang_mismatch"] == (0, 0.0)
    with connect(tmp_path) as con:
        by_reason = con.execute(
            "SELECT drop_reason, count(*) FROM segments GROUP BY 1 ORDER BY 1"
        ).fetchall()
        drops = con.execute("SELECT drop_reason, lang, segments, hours FROM drops").fetchall()
    assert by_reason == [("known_hallucination", 2), ("long_word", 1), (None, 1)]
    assert drops == [("known_hallucination", "en", 2, 2.0), ("long_word", "en", 1, 1.0)]


def test_filter_text_refuses_a_language_that_is_not_iso_639():
    result = filter_text("--lang", "xx", stdin=ROWS)
    assert result.exit_code == 2
    assert "'xx' is not an ISO 639 code" in result.stderr and result.stdout == ""


def _pseudo_words(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices("abcdefghilmnoprstuvz", k=rng.randint(3, 9))) for _ in range(count)]


def test_a_runaway_transcript_is_judged_whole_and_its_loop_found():
    """Rows of tens of thousands of words (a decoder that never stopped) are read in full:
    a sentence looping three times in the middle is found, and without it the row is
    judged on its rate. bench/text_rules_long_rows.py times rows up to 200 000 words."""
    text = _pseudo_words(30000, seed=1)
    sentence = _pseudo_words(60, seed=2)
    looping = text[:15000] + sentence * 3 + text[15000:]
    assert hallucination_reason(looping, 10000.0, "it", HallucinationConfig()) == "repeated_ngrams"
    assert hallucination_reason(text, 10000.0, "it", HallucinationConfig()) is None
    assert hallucination_reason(text, 60.0, "it", HallucinationConfig()) == "chars_per_second_high"
