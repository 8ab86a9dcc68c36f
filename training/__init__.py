"""FAMA-style ASR+ST training on curated shards (model, tokenizer, schedules, launcher)."""
