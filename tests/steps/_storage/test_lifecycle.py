"""The lifecycle rules of the registry index (steps/_storage/lifecycle.py): the record a registration adds, the
moves between statuses with their history, and which archived version a rollback brings back."""

from __future__ import annotations

from typing import Any

import pytest

from steps._core.documents import BundleManifest, RegistryIndex, VersionRecord
from steps._storage import lifecycle

MANIFEST: Any = {"fingerprint": "fp", "files": {"model.skops": "0" * 64}, "git_commit": "0123abcd", "reason": "drift",
                 "metrics": {"accuracy": 0.9, "rows": 10, "calibrated": True}}


def record(version: int, manifest: BundleManifest = MANIFEST, report: Any = None, passed: bool = True) -> VersionRecord:
    gate_report: Any = report if report is not None else {"passed": passed}  # a part of gate.json is accepted
    return lifecycle.new_record(version, manifest, gate_report, passed=passed, bundle_sha256="1" * 64, actor="alice",
                                reason=None, git_commit=None)


def index(*records: VersionRecord) -> RegistryIndex:
    built = lifecycle.new_index("churn-model")
    built["versions"].extend(records)
    return built


def test_every_move_leads_to_a_known_status() -> None:
    assert set(lifecycle.TRANSITIONS) == set(lifecycle.STATUSES)
    assert {to for moves in lifecycle.TRANSITIONS.values() for to in moves} <= set(lifecycle.STATUSES)
    assert lifecycle.TRANSITIONS["archived"] == () and lifecycle.TRANSITIONS["rejected"] == ()


def test_a_partial_gate_report_registers_staged_with_the_bundles_metrics() -> None:
    new = record(1)
    assert (new["status"], new["gate"]) == ("staged", {"passed": True, "failed": [], "checked": []})
    # Numbers only: a boolean is not a metric.
    assert new["metrics"] == {"accuracy": 0.9, "rows": 10.0}
    assert (new["git_commit"], new["reason"]) == ("0123abcd", "drift")
    assert new["history"] == [{"from": None, "to": "staged", "at": new["created_at"], "by": "alice",
                               "why": "quality gates passed"}]


@pytest.mark.parametrize(
    ("report", "why"),
    [
        ({"passed": False, "failed": ["pr_auc"], "gates": []}, "failed gates: pr_auc"),
        ({"passed": False, "gates": [{"name": "accuracy", "passed": True}, {"name": "pr_auc", "passed": False}]},
         "failed gates: pr_auc"),
        ({"passed": False}, "the gate report did not pass"),
    ],
    ids=["failed-list", "from-the-gates", "no-detail"],
)
def test_a_failed_gate_report_registers_rejected_naming_the_failed_gates(report: Any, why: str) -> None:
    new = record(1, report=report, passed=False)
    assert new["status"] == "rejected"
    assert new["history"][0]["why"] == why


def test_the_gate_reports_candidate_metrics_win_over_the_bundles() -> None:
    new = record(1, report={"passed": True, "candidate": {"pr_auc": 0.7, "latency": None},
                            "gates": [{"name": "pr_auc", "passed": True}]})
    assert new["metrics"] == {"pr_auc": 0.7}
    assert new["gate"]["checked"] == ["pr_auc"]


@pytest.mark.parametrize(("to", "previous", "why"), [("production", "archived", "replaced by v2"),
                                                     ("canary", "rejected", "superseded by canary v2")])
def test_a_new_production_or_canary_moves_the_previous_one_at_the_same_instant(
    to: str, previous: str, why: str
) -> None:
    old, new = record(1), record(2)
    whole = index(old, new)
    lifecycle.move(whole, old, to, by="alice", why="first", details=None)
    lifecycle.move(whole, new, to, by="bob", why="second", details={"steps": 4})
    assert (old["status"], new["status"]) == (previous, to)
    assert old["history"][-1] == {"from": to, "to": previous, "at": new["history"][-1]["at"], "by": "bob", "why": why}
    assert new["history"][-1]["details"] == {"steps": 4}


def test_a_rollback_target_is_the_last_version_replaced_as_production_never_one_rolled_away_from() -> None:
    first, second, third = record(1), record(2), record(3)
    whole = index(first, second, third)
    for version in (first, second, third):
        lifecycle.move(whole, version, "production", by="alice", why="promoted", details=None)
    assert lifecycle.last_replaced_production(whole, exclude=3) is second
    lifecycle.append(third, "archived", lifecycle.now(), "alice", "rollback", {"rollback": True})
    lifecycle.append(second, "production", lifecycle.now(), "alice", "rollback", {"rollback": True})
    # v3 was archived by the rollback: the next rollback goes to v1, not back to v3.
    assert lifecycle.last_replaced_production(whole, exclude=2) is first
    assert lifecycle.last_replaced_production(index(record(1)), exclude=0) is None
