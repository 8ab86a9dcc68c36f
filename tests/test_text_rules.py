"""The first hallucination rules, on text a user would type into a threshold experiment."""

import pytest

from pipeline.text_rules import HallucinationConfig, hallucination_reason

RULES = HallucinationConfig()


@pytest.mark.parametrize(
    ("text", "duration", "reason"),
    [
        ("", 3.0, "empty_text"),
        (" ... ", 3.0, "empty_text"),
        ("the the the the the the the the the the", 5.0, "repeated_words"),
        ("so I think that I think that I think that we should go", 6.0, "repeated_ngrams"),
        ("one of the best and one of the worst, one of the oldest too", 6.0, None),
        ("this is aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa test", 3.0, "long_word"),
        ("a sentence with one incomprehensibilities word", 4.0, None),
        (
            "This sentence has far too many characters for the audio it came from",
            0.5,
            "chars_per_second",
        ),
        ("Buongiorno a tutti, oggi parliamo della storia di Firenze.", 4.0, None),
        ("The weather today is sunny with a light breeze from the west.", 4.0, None),
    ],
)
def test_hallucination_rules(text, duration, reason):
    assert hallucination_reason(text, duration, RULES) == reason
