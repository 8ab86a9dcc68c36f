"""vaglio: curate openly licensed speech corpora into clean, traceable training data."""

__version__ = "0.1.0"
