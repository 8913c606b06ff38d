"""The model server behind `python -m steps.serve`: loader (registry fetch, bundle to ServedModel), app (the V1
and Open Inference Protocol V2 routes), batcher (micro-batching), exchange (the seam between the app and the
transport), http (the HTTP/1.1 transport and the worker process), supervisor (forked workers), contract (request
checks), metrics, inference_log, log and codec.
"""
