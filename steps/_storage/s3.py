"""One place that builds S3 clients and tells transient S3 failures from permanent ones."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse


def client() -> Any:
    """An S3 client; `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`) points it at any S3-compatible server."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": int(os.environ.get("MLOPS_S3_ATTEMPTS", "3")), "mode": "standard"},
        connect_timeout=float(os.environ.get("MLOPS_S3_CONNECT_TIMEOUT", "5")),
        read_timeout=float(os.environ.get("MLOPS_S3_READ_TIMEOUT", "30")),
    )
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    return boto3.client("s3", endpoint_url=endpoint, config=config)


def split(uri: str) -> tuple[str, str]:
    """'s3://bucket/a/b' -> ('bucket', 'a/b')."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    return parsed.netloc, parsed.path.lstrip("/")


def is_transient(err: BaseException) -> bool:
    """True for failures that may pass on retry: no connection, timeouts, throttling, 5xx."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, ReadTimeoutError

    if isinstance(err, (ConnectionError, HTTPClientError, ReadTimeoutError)):
        return True
    if isinstance(err, ClientError):
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = err.response.get("Error", {}).get("Code", "")
        return status >= 500 or code in ("SlowDown", "Throttling", "RequestTimeout")
    return False


def error_code(err: BaseException) -> str:
    response = getattr(err, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
