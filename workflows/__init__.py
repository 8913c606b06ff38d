"""Hera builders of the Argo resources, the renderer, the linter, the local runner and the `mlops` command line."""
