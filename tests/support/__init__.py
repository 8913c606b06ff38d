"""Helpers that tests share and production code never imports."""
