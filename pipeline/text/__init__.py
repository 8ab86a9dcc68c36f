"""Text: hallucination rules, language ID, normalising, punctuation and translation guards."""
