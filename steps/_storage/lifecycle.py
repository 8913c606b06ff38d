"""A version's lifecycle in the registry index: the statuses and the moves between them, history entries, and
the record a registration adds (its gate summary and metrics, from the gate report).

Pure functions on index records (steps._core.documents.VersionRecord); the Registry reads and writes the index.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from steps._core.documents import (
    BundleManifest,
    GateReport,
    GateSummary,
    HistoryEntry,
    RegistryIndex,
    VersionRecord,
)

STATUSES = ("staged", "canary", "production", "archived", "rejected")
# The moves anyone may ask for. archived -> production happens only through a rollback.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "staged": ("canary", "production", "rejected"),
    "canary": ("production", "rejected"),
    "production": ("archived",),
    "archived": (),
    "rejected": (),
}
# The statuses only one version holds at a time: a new holder moves the previous one on, to this status.
_SINGLE = {"production": "archived", "canary": "rejected"}
INDEX_FORMAT = 1


def default_actor() -> str:
    """Who acts, for the history: $MLOPS_ACTOR (a workflow sets `argo:<workflow>`), else user@host."""
    actor = os.environ.get("MLOPS_ACTOR")
    if actor:
        return actor
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def new_index(model: str) -> RegistryIndex:
    return {"format_version": INDEX_FORMAT, "model": model, "versions": []}


def new_record(
    version: int,
    manifest: BundleManifest,
    gate_report: GateReport,
    *,
    passed: bool,
    bundle_sha256: str,
    actor: str,
    reason: str | None,
    git_commit: str | None,
) -> VersionRecord:
    """A registered version's index record: `staged` when the gates passed, else `rejected` naming the failed gates."""
    gate = gate_summary(gate_report, passed)
    status = "staged" if passed else "rejected"
    at = now()
    return {
        "version": version,
        "status": status,
        "fingerprint": manifest["fingerprint"],
        "created_at": at,
        "git_commit": git_commit or manifest.get("git_commit"),
        "reason": reason or manifest.get("reason"),
        "bundle_sha256": bundle_sha256,
        "files": manifest["files"],
        "metrics": metrics(gate_report, manifest),
        "gate": gate,
        "history": [
            {
                "from": None,
                "to": status,
                "at": at,
                "by": actor,
                "why": "quality gates passed" if passed else rejection(gate["failed"]),
            }
        ],
    }


def move(index: RegistryIndex, record: VersionRecord, to: str, *, by: str, why: str,
         details: dict[str, Any] | None) -> None:
    """Move `record` to `to` (the caller checked TRANSITIONS), and the previous production (archived) or canary
    (rejected) out of the way, as Argo Rollouts aborts a canary that a newer revision replaces."""
    at = now()
    follow = _SINGLE.get(to)
    if follow is not None:
        for other in index["versions"]:
            if other["status"] == to and other is not record:
                if to == "production":
                    why_other = f"replaced by v{record['version']}"
                else:
                    why_other = f"superseded by canary v{record['version']}"
                append(other, follow, at, by, why_other, None)
    append(record, to, at, by, why, details)


def append(record: VersionRecord, to: str, at: str, by: str, why: str, details: dict[str, Any] | None) -> None:
    """Record one move in the version's history and set its status."""
    entry: HistoryEntry = {"from": record["status"], "to": to, "at": at, "by": by, "why": why}
    if details:
        entry["details"] = details
    record["history"].append(entry)
    record["status"] = to


def last_replaced_production(index: RegistryIndex, exclude: int) -> VersionRecord | None:
    """The archived version most recently replaced as production (not one archived by a rollback): a rollback's
    target, so rolling back twice goes two production versions back, not to and fro."""
    best: tuple[tuple[str, int], VersionRecord] | None = None
    for record in index["versions"]:
        if record["status"] != "archived" or record["version"] == exclude or not record["history"]:
            continue
        last = record["history"][-1]
        if last.get("from") != "production" or (last.get("details") or {}).get("rollback"):
            continue
        rank = (str(last.get("at")), int(record["version"]))
        if best is None or rank > best[0]:
            best = (rank, record)
    return best[1] if best else None


# --- what the index keeps of the gate report: gate.json, or a part of it (`{"passed": true}`) -------------------


def gate_summary(gate_report: GateReport, passed: bool) -> GateSummary:
    return {"passed": passed, "failed": failed_gates(gate_report), "checked": gate_names(gate_report)}


def failed_gates(gate_report: GateReport) -> list[str]:
    failed: object = gate_report.get("failed")
    if isinstance(failed, list):
        return [str(name) for name in failed]
    gates: object = gate_report.get("gates")
    if isinstance(gates, list):
        return [str(g.get("name")) for g in gates if isinstance(g, dict) and not g.get("passed")]
    return []


def gate_names(gate_report: GateReport) -> list[str]:
    gates: object = gate_report.get("gates")
    if not isinstance(gates, list):
        return []
    return [str(g["name"]) for g in gates if isinstance(g, dict) and "name" in g]


def rejection(failed: list[str]) -> str:
    return f"failed gates: {', '.join(failed)}" if failed else "the gate report did not pass"


def metrics(gate_report: GateReport, manifest: BundleManifest) -> dict[str, float]:
    """The candidate's holdout metrics from the gate report (else the bundle's), numbers only."""
    sources: tuple[object, ...] = (gate_report.get("candidate"), manifest.get("metrics"))
    for source in sources:
        if isinstance(source, Mapping):
            numbers = {
                str(k): float(v) for k, v in source.items() if isinstance(v, int | float) and not isinstance(v, bool)
            }
            if numbers:
                return numbers
    return {}
