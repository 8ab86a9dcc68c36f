"""The one error for optional dependencies that are not installed (vllm, nemo, comet)."""


class MissingExtraError(RuntimeError):
    """A component whose optional dependencies are missing; the message says what to install."""

    def __init__(self, what: str, module: str, extra: str):
        super().__init__(f"{what} needs {module!r}: pip install 'vaglio[{extra}]'")
