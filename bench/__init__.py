"""Benchmarks that print their figures as JSON lines, each with the command that made it."""
