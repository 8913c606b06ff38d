"""The local Argo executor's engine: the node tree (nodes.py), the controller that walks it as Argo's does, and
the executor that runs one pod's containers as local processes (the contract between them: pods.py)."""
