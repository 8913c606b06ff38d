"""A client of the local deployment's control endpoint and metrics (what the rollout step's local target uses).
Control calls carry the router's bearer token: the one given, else the one in the token file for the URL
(steps._canary.local.auth), read at each call so a restarted `mlops deploy` is followed."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from steps._canary.local import auth
from steps._canary.local.deployment import Status
from steps._canary.local.servers import READY_TIMEOUT_SECONDS, DeployError, Unauthorized, Unhealthy
from steps._core.errors import StepError, TransientError
from steps._core.prometheus import read_page


class DeployClient:
    def __init__(self, url: str, token: str | None = None):
        self.url = url.rstrip("/")
        self.token = token

    def status(self) -> Status:
        return self._call("GET", "/control/status")

    def set_stable(self, version: int) -> Status:
        return self._call("POST", "/control/stable", {"version": version})

    def set_canary(self, version: int, weight: int) -> Status:
        return self._call("POST", "/control/canary", {"version": version, "weight": weight})

    def promote(self) -> Status:
        return self._call("POST", "/control/promote", {})

    def abort(self) -> Status:
        return self._call("POST", "/control/abort", {})

    def metrics(self, role: str) -> str:
        """The exposition of the `role` server (empty while there is none)."""
        return read_page(f"{self.url}/metrics/{role}")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Status:
        data = json.dumps(body).encode() if body is not None else None
        token_file = None if self.token is not None else auth.token_file_for(self.url)
        token = self.token if token_file is None else auth.read_token(token_file)
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            # A change may start a server and wait for it to be ready: the answer can take that long.
            with urllib.request.urlopen(request, timeout=READY_TIMEOUT_SECONDS + 10) as answer:
                result: Status = json.loads(answer.read())
                return result
        except urllib.error.HTTPError as err:
            said = f"local deployment {method} {path}: HTTP {err.code}: {err.read().decode(errors='replace')[:600]}"
            if err.code == 401:
                raise Unauthorized(f"{said}; {self._token_hint(token_file, token)}") from err
            kind = Unhealthy if err.code == 422 else DeployError
            raise kind(said) from err
        except (urllib.error.URLError, OSError) as err:
            raise TransientError(f"local deployment {self.url} unreachable ({method} {path}): {err}") from err

    def _token_hint(self, token_file: Path | None, token: str | None) -> str:
        if self.token is not None:
            return "the token given is not this router's"
        if token_file is None:
            return (f"no token for {self.url}, not this machine's: set ${auth.TOKEN_FILE_ENV} to a copy of its "
                    "router's token file")
        if token is None:
            return (f"no token file {token_file}: is `mlops deploy` on that port run by this user? (else set "
                    f"${auth.TOKEN_FILE_ENV} to its token file)")
        return (f"the token in {token_file} is not this router's (else set ${auth.TOKEN_FILE_ENV} to its "
                "token file)")


def reachable(url: str) -> bool:
    """Whether a local deployment answers at `url` (nothing, or something else, answering: False). Raises
    Unauthorized when one answers but refuses the token: it must not be taken for a free port."""
    try:
        DeployClient(url).status()
    except Unauthorized:
        raise
    except StepError:
        return False
    return True
