"""The model bundle: its files and hashes, the feature contract and encoder, the skops model, the compiled trees,
the parity check and the reference profile.
"""
