"""Tests of steps/_model/, one file per module."""
