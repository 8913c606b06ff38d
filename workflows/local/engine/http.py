"""An `http` template's request, made as Argo's agent makes it (workflow/executor/agent.go:233-370): one request
with Go's client's manners (redirects followed, gzip undone, `Go-http-client/1.1` unless a header says otherwise);
the result is the body; Succeeded on a 2xx status or when `successCondition` (expr-lang over `request` and
`response`) holds. Also the readiness probes of a daemon (httpGet, tcpSocket), as the kubelet runs them.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from workflows.local.engine.nodes import Outputs
from workflows.local.engine.pods import AgentTask, PodRefused, PodResult, PodSpec
from workflows.local.lang.errors import LangError
from workflows.local.lang.exprlang import compile_expr
from workflows.local.lang.gotypes import StrList

_MAX_REDIRECTS = 10  # net/http's default CheckRedirect


def start(spec: PodSpec, pod_dir: Path) -> Request:
    """Start the request in the background; PodRefused for what cannot be made here."""
    tmpl = spec.template.get("http") or {}
    for header in tmpl.get("headers") or []:
        if "valueFrom" in header:
            raise PodRefused(f"{spec.node_name}: header {header.get('name')!r} takes its value from a Secret, which "
                             "has no local source")
    condition = str(tmpl.get("successCondition") or "")
    if "bodyBytes" in condition:
        raise PodRefused(f"{spec.node_name}: successCondition uses request.bodyBytes (Go's []byte), which the "
                         "local expression language does not model")
    if condition:
        try:
            compile_expr(condition)
        except LangError as err:
            raise PodRefused(f"{spec.node_name}: successCondition {condition!r}: {err}") from err
    pod_dir.mkdir(parents=True, exist_ok=True)
    return Request(spec, pod_dir).start()


class Request(AgentTask):
    """A PodHandle for one HTTP request, made on a thread."""

    def __init__(self, spec: PodSpec, pod_dir: Path):
        self.spec = spec
        self.log = pod_dir / "log"
        self.started_at = time.time()
        self._done: PodResult | None = None
        self._stopped: tuple[str, str] | None = None
        self._thread = threading.Thread(target=self._run, name=f"http-{spec.pod_name}", daemon=True)

    def start(self) -> Request:
        self._thread.start()
        return self

    def poll(self) -> PodResult | None:
        if self._stopped is not None:
            return self._result(*self._stopped, None)
        if self._done is None and self.spec.deadline is not None and time.time() >= self.spec.deadline:
            self.stop("Failed", "Pod was active on the node longer than the specified deadline")
            return self.poll()
        return self._done

    def stop(self, phase: str, message: str) -> None:
        if self._done is None and self._stopped is None:
            self._stopped = (phase, message)

    def _result(self, phase: str, message: str, body: str | None) -> PodResult:
        return PodResult(phase=phase, message=message, exit_code=None, outputs=Outputs(result=body),
                         started_at=self.started_at, finished_at=time.time(), log=self.log)

    def _run(self) -> None:
        tmpl = self.spec.template.get("http") or {}
        method = str(tmpl.get("method") or "GET")
        try:
            status, headers, body = request(tmpl)
        except (OSError, http.client.HTTPException, ValueError) as err:
            message = f'{method[:1].upper()}{method[1:].lower()} "{tmpl.get("url")}": {err}'
            self.log.write_text(message + "\n")
            self._done = self._result("Failed", message, None)
            return
        text = body.decode("utf-8", errors="replace")
        self.log.write_text(f"{status}\n{text}")
        condition = str(tmpl.get("successCondition") or "")
        phase, message = "Succeeded", ""
        if not condition:
            if not 200 <= status < 300:
                phase, message = "Failed", f"received non-2xx response code: {status}"
        else:
            scope = {
                "request": {"method": str(tmpl.get("method") or ""), "url": str(tmpl.get("url")),
                            "body": str(tmpl.get("body") or ""),
                            "bodyBytes": None,
                            "headers": {str(h["name"]): StrList([str(h.get("value", ""))])
                                        for h in tmpl.get("headers") or []}},
                "response": {"statusCode": status, "body": text, "headers": headers},
            }
            try:
                if not compile_expr(condition).run_bool(scope):
                    phase, message = "Failed", f"successCondition '{condition}' evaluated false"
            except LangError as err:
                phase, message = "Failed", str(err)
        self._done = self._result(phase, message, text)


def request(tmpl: dict[str, Any]) -> tuple[int, dict[str, StrList], bytes]:
    """Make the request as Go's http.DefaultClient would: status, headers (canonical keys), body."""
    method = str(tmpl.get("method") or "GET")
    url = str(tmpl.get("url") or "")
    body_from = tmpl.get("bodyFrom") or {}
    body = base64.b64decode(str(body_from["bytes"])) if body_from.get("bytes") else (
        b"" if tmpl.get("bodyFrom") else str(tmpl.get("body") or "").encode())
    timeout = float(tmpl["timeoutSeconds"]) if tmpl.get("timeoutSeconds") is not None else None
    deadline = None if timeout is None else time.monotonic() + timeout
    headers: dict[str, str] = {"User-Agent": "Go-http-client/1.1"}
    host_header = None
    for header in tmpl.get("headers") or []:
        name, value = str(header["name"]), str(header.get("value", ""))
        if name.lower() == "host":
            host_header = value
        else:
            headers = {k: v for k, v in headers.items() if k.lower() != name.lower()} | {name: value}
    gzip_ok = method != "HEAD" and not any(k.lower() in ("accept-encoding", "range") for k in headers)
    if gzip_ok:
        headers["Accept-Encoding"] = "gzip"
    context = ssl._create_unverified_context() if tmpl.get("insecureSkipVerify") else ssl.create_default_context()
    for _ in range(_MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported protocol scheme {parts.scheme!r}")
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
        conn: http.client.HTTPConnection = (
            http.client.HTTPSConnection(parts.hostname, parts.port, timeout=remaining, context=context)
            if parts.scheme == "https" else http.client.HTTPConnection(parts.hostname, parts.port, timeout=remaining))
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            send = dict(headers)
            if host_header is not None:
                send["Host"] = host_header
            conn.request(method, target, body=body if body or method not in ("GET", "HEAD") else None, headers=send)
            response = conn.getresponse()
            data = response.read()
            status = response.status
            got: dict[str, StrList] = {}
            for key, value in response.getheaders():
                got.setdefault(_canonical(key), StrList()).append(value)
        finally:
            conn.close()
        location = (got.get("Location") or [None])[0]
        if status in (301, 302, 303, 307, 308) and location:
            url = urljoin(url, location)
            if status in (301, 302, 303):  # net/http redirectBehavior: other methods become GET, without body
                method = method if method in ("GET", "HEAD") else "GET"
                body = b""
            continue
        if gzip_ok and (got.get("Content-Encoding") or [""])[0].lower() == "gzip":
            data = gzip.decompress(data)
            for key in ("Content-Encoding", "Content-Length"):
                got.pop(key, None)
        return status, got, data
    raise ValueError(f"stopped after {_MAX_REDIRECTS} redirects")


def _canonical(key: str) -> str:
    """textproto.CanonicalMIMEHeaderKey: each word's first letter upper case, the rest lower case."""
    if not re.fullmatch(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+", key):
        return key
    return "-".join(word[:1].upper() + word[1:].lower() for word in key.split("-"))


class Probe:
    """A container's readiness probe as the kubelet runs it: after initialDelaySeconds, every periodSeconds, until
    it passes once; an exec probe runs in the container's view (`wrap` makes its command line)."""

    def __init__(self, spec: dict[str, Any], ports: list[dict[str, Any]], wrap: Callable[[list[str]], list[str]],
                 env: dict[str, str]):
        self.spec, self.ports, self.wrap, self.env = spec, ports, wrap, env
        self.ready = not spec
        self._next = 0.0

    def passed(self, started_at: float) -> bool:
        now = time.time()
        if self.ready or now < max(self._next, started_at + float(self.spec.get("initialDelaySeconds") or 0)):
            return self.ready
        self._next = now + float(self.spec.get("periodSeconds") or 10)
        timeout = float(self.spec.get("timeoutSeconds") or 1)
        if "exec" in self.spec:
            argv = [str(a) for a in (self.spec["exec"] or {}).get("command") or []]
            try:
                done = subprocess.run(self.wrap(argv), env=self.env, capture_output=True, timeout=timeout)
                self.ready = done.returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                self.ready = False
        else:
            self.ready = probe(self.spec, self.ports, timeout)
        return self.ready


def probe(spec: dict[str, Any], ports: list[dict[str, Any]], timeout: float) -> bool:
    """One readiness probe (httpGet: a status from 200 to 399; tcpSocket: a connection), as the kubelet makes it."""
    check = spec.get("httpGet") or spec.get("tcpSocket") or {}
    port: Any = check.get("port")
    if isinstance(port, str) and not port.isdigit():
        port = next((p.get("containerPort") for p in ports if p.get("name") == port), None)
    if port is None:
        return False
    host = str(check.get("host") or "127.0.0.1")
    try:
        if "tcpSocket" in spec:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return True
        scheme = str(check.get("scheme") or "HTTP").lower()
        conn_type = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        kwargs: dict[str, Any] = {"context": ssl._create_unverified_context()} if scheme == "https" else {}
        conn = conn_type(host, int(port), timeout=timeout, **kwargs)
        try:
            headers = {"User-Agent": "kube-probe/1.30"} | {str(h["name"]): str(h.get("value", ""))
                                                            for h in check.get("httpHeaders") or []}
            conn.request("GET", str(check.get("path") or "/"), headers=headers)
            return 200 <= conn.getresponse().status < 400
        finally:
            conn.close()
    except (OSError, http.client.HTTPException):
        return False
