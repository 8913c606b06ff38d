"""The model server: routes (V1, Open Inference Protocol V2), HTTP transport, request contract, metrics and the
inference log.
"""
