"""Drift benchmark: our drift statistics against Evidently and alibi-detect (`python -m bench.drift.run`)."""
