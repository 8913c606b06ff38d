"""Serving benchmark: our model server against peer servers, side by side, in one run (`python -m
bench.serving.run`).
"""
