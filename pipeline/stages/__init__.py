"""The curation stages, one per module, in pipeline order."""
