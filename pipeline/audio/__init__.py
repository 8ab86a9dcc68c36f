"""Audio: decoding and standardising, Silero VAD, cutting segments, duplicate detection."""
