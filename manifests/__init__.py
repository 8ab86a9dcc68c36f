"""Record schemas (Arrow) and the DuckDB views over a workdir: the one source of field names."""
