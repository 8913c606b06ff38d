"""Tests of steps/_drift/, one file per module."""
