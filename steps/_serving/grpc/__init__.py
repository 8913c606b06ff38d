"""The model server's KServe V2 gRPC service (inference.GRPCInferenceService): the published proto, the code
grpcio-tools generates from it (README.md says how), and the service on the worker's event loop (service.py).
Imported only by a worker that serves gRPC (`--grpc-port`), never by the HTTP-only server."""
