"""The model registry and the object stores it lives on (a local folder, S3)."""
