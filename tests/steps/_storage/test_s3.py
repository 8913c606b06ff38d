"""S3 plumbing (steps/_storage/s3.py): s3:// URIs, the client's endpoint and retry settings, and which real
failures are transient (exit 3, the workflow retries) and which are permanent (retrying will not help)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from steps._storage import s3
from tests.support.processes import free_port

pytestmark = pytest.mark.integration


# --- URIs ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("uri", "split"), [
    ("s3://mlops-registry/models/fraud/index.json", ("mlops-registry", "models/fraud/index.json")),
    ("s3://bucket/key", ("bucket", "key")),
    ("s3://bucket", ("bucket", "")),
    ("s3://bucket/", ("bucket", "")),
    ("s3://bucket/folder/", ("bucket", "folder/")),
])
def test_split_gives_the_bucket_and_the_key(uri: str, split: tuple[str, str]) -> None:
    assert s3.split(uri) == split


@pytest.mark.parametrize("uri", ["bucket/key", "s3:///key", "s3:bucket/key", "file:///tmp/x", "gs://bucket/key", ""])
def test_split_refuses_what_is_not_an_s3_bucket_uri(uri: str) -> None:
    with pytest.raises(ValueError) as caught:
        s3.split(uri)
    assert str(caught.value) == f"{uri!r} is not an s3://bucket/key URI"


# --- errors from a real S3 API (moto) -----------------------------------------------------------------------------


def client_error(call: Any, **kwargs: Any) -> Exception:
    with pytest.raises(Exception) as caught:
        call(**kwargs)
    return caught.value


def test_a_missing_object_is_permanent(s3_bucket: str) -> None:
    err = client_error(s3.client().get_object, Bucket=s3_bucket, Key="models/absent.json")
    assert type(err).__name__ == "NoSuchKey"
    assert (s3.is_transient(err), s3.error_code(err)) == (False, "NoSuchKey")


def test_a_missing_bucket_is_permanent(s3_env: str) -> None:
    err = client_error(s3.client().list_objects_v2, Bucket="no-such-bucket-here")
    assert (s3.is_transient(err), s3.error_code(err)) == (False, "NoSuchBucket")


def test_a_failed_create_only_write_is_permanent(s3_bucket: str) -> None:
    client = s3.client()
    client.put_object(Bucket=s3_bucket, Key="v1/bundle.json", Body=b"{}")
    err = client_error(client.put_object, Bucket=s3_bucket, Key="v1/bundle.json", Body=b"{}", IfNoneMatch="*")
    assert (s3.is_transient(err), s3.error_code(err)) == (False, "PreconditionFailed")


def test_error_code_of_an_error_without_a_response_is_empty() -> None:
    assert s3.error_code(ValueError("not from botocore")) == ""
    assert s3.is_transient(ValueError("not from botocore")) is False
    assert s3.is_transient(OSError("a plain OSError is not a botocore connection error")) is False


# --- an S3 endpoint that fails ------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (the read-timeout test) closed the connection before the reply: expected.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FailingS3:
    """A stdlib server answering every request with one S3 error (status, code), counting the requests."""

    def __init__(self, status: int, code: str, delay: float = 0.0):
        self.requests = 0
        served = self
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{code} from the test'
                f"</Message><RequestId>1</RequestId></Error>").encode()

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                served.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if delay:
                    threading.Event().wait(delay)
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_HEAD = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Credentials for a test endpoint, one attempt per call unless a test says otherwise."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "MLOPS_S3_ATTEMPTS": "1"}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    yield monkeypatch


@pytest.fixture
def failing(aws: pytest.MonkeyPatch) -> Iterator[list[FailingS3]]:
    started: list[FailingS3] = []
    yield started
    for server in started:
        server.close()


def error_from(failing: list[FailingS3], aws: pytest.MonkeyPatch, status: int, code: str) -> Exception:
    failing.append(FailingS3(status, code))
    aws.setenv("AWS_ENDPOINT_URL", failing[-1].url)
    return client_error(s3.client().get_object, Bucket="bucket", Key="key")


@pytest.mark.parametrize(("status", "code"), [
    (500, "InternalError"), (503, "ServiceUnavailable"), (503, "SlowDown"), (400, "RequestTimeout"),
    (400, "Throttling"),
])
def test_server_errors_and_throttling_are_transient(failing: list[FailingS3], aws: pytest.MonkeyPatch,
                                                    status: int, code: str) -> None:
    err = error_from(failing, aws, status, code)
    assert (s3.error_code(err), s3.is_transient(err)) == (code, True)


@pytest.mark.parametrize(("status", "code"), [(403, "AccessDenied"), (403, "InvalidAccessKeyId"),
                                              (400, "InvalidBucketName")])
def test_refusals_are_permanent(failing: list[FailingS3], aws: pytest.MonkeyPatch, status: int, code: str) -> None:
    err = error_from(failing, aws, status, code)
    assert (s3.error_code(err), s3.is_transient(err)) == (code, False)


def test_an_unreachable_endpoint_is_transient(aws: pytest.MonkeyPatch) -> None:
    aws.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    err = client_error(s3.client().get_object, Bucket="bucket", Key="key")
    assert type(err).__name__ == "EndpointConnectionError"
    assert s3.is_transient(err) is True


def test_an_endpoint_that_does_not_answer_in_time_is_transient(failing: list[FailingS3],
                                                               aws: pytest.MonkeyPatch) -> None:
    failing.append(FailingS3(200, "Never", delay=3))
    aws.setenv("AWS_ENDPOINT_URL", failing[-1].url)
    aws.setenv("MLOPS_S3_READ_TIMEOUT", "0.5")
    err = client_error(s3.client().get_object, Bucket="bucket", Key="key")
    assert type(err).__name__ == "ReadTimeoutError"
    assert s3.is_transient(err) is True


# --- the client's settings ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("attempts", [1, 3])
def test_the_client_retries_as_many_times_as_configured(failing: list[FailingS3], aws: pytest.MonkeyPatch,
                                                        attempts: int) -> None:
    failing.append(FailingS3(500, "InternalError"))
    aws.setenv("AWS_ENDPOINT_URL", failing[-1].url)
    aws.setenv("MLOPS_S3_ATTEMPTS", str(attempts))
    client_error(s3.client().get_object, Bucket="bucket", Key="key")
    # As it behaves today: the value is botocore's max_attempts, which counts the retries after the first request,
    # so MLOPS_S3_ATTEMPTS=N makes N + 1 requests (the name says N).
    assert failing[-1].requests == attempts + 1


def test_the_s3_specific_endpoint_wins_over_the_general_one(failing: list[FailingS3], aws: pytest.MonkeyPatch,
                                                            s3_server: str) -> None:
    failing.append(FailingS3(403, "AccessDenied"))
    aws.setenv("AWS_ENDPOINT_URL", failing[-1].url)
    aws.setenv("AWS_ENDPOINT_URL_S3", s3_server)
    client = s3.client()
    assert client.meta.endpoint_url == s3_server
    client.create_bucket(Bucket="endpoint-check")
    assert failing[-1].requests == 0
