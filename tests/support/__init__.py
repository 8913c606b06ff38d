"""Helpers that tests share and production code never imports, one module per concept (paths, processes, models,
bundles, kube, argo, canary, ...). Test modules import from here, never from each other or from a conftest."""
