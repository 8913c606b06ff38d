"""Tests of steps/_core/, one file per module."""
