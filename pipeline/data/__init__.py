"""The data files vaglio ships (phrase lists, alphabets, MOSEL's source list): paths alone, so
that anything, the command line's defaults included, may name one at no cost."""

from pathlib import Path

MOSEL_SOURCES = Path(__file__).parent / "mosel_sources.tsv"
"""MOSEL's published list of sources (TSV), as vaglio ships it."""
