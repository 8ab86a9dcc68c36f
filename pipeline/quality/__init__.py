"""Audio quality of a segment: DNSMOS P.835 ratings from a model, and a model-free SNR."""
