"""The exits of a curated workdir: a hub dataset folder with its card, and training-toolkit exports.

One module per concern: `rows` reads the kept rows (licences judged again, split by recording),
`hub_folder` and `card` build what the hub gets, `hub` uploads it, and `nemo`, `nemo_tarred` and
`lhotse_shar` write the formats NeMo and Lhotse read natively, each with a `check` that reads
the export back with the consumer's own reader.
"""
