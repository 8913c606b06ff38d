"""What the registry page shows of each version, read once from the registry: the index record, and from the
version's stored bundle.json its lineage and gate report (a version whose bundle.json cannot be read still shows
its index record, with the reason)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from steps._core.documents import VersionRecord
from steps._model.bundle import BundleError
from steps._storage.registry import Registry, VersionNotFound, check_model


@dataclass
class Gate:
    """One gated metric of one version: its value and the bound it was held to (None where not recorded)."""

    name: str
    value: float | None
    bound: float | None
    bound_kind: str  # minimum | maximum | required | "" when the report did not say
    status: str  # pass | fail | skipped
    baseline_value: float | None = None
    note: str = ""


@dataclass
class VersionView:
    record: VersionRecord
    manifest: dict[str, Any] | None  # the stored bundle.json, read loosely: older and hand-made bundles lack fields
    problem: str = ""  # why bundle.json could not be read
    gates: list[Gate] = field(default_factory=list)

    @property
    def number(self) -> int:
        return int(self.record["version"])

    @property
    def status(self) -> str:
        return self.record["status"]

    @property
    def gate_report(self) -> dict[str, Any] | None:
        report = (self.manifest or {}).get("gate")
        return report if isinstance(report, dict) else None

    @property
    def baseline(self) -> str:
        """The version the gate compared against (the parent), as the gate report names it."""
        report = self.gate_report or {}
        baseline: Any = report.get("baseline")
        if isinstance(baseline, dict) and baseline.get("version") is not None:
            version = baseline["version"]
            return f"v{version}" if isinstance(version, int) or str(version).isdigit() else str(version)
        return "none (first of its kind)" if report else "-"

    @property
    def trigger(self) -> str:
        """Why this training ran, as a person says it: manual, drift (with the drifted features), git push."""
        reason = (self.record.get("reason") or "").strip()
        low = reason.lower()
        if "drift" in low:
            drifted = [str(f) for f in (self.manifest or {}).get("drifted_features") or []]
            return f"drift: {', '.join(drifted)}" if drifted else "drift"
        if low.replace("_", "-") in ("git-push", "push", "git-commit") or low.startswith("git"):
            commit = (self.record.get("git_commit") or "")[:10]
            return f"git push {commit}".strip()
        return reason or "-"

    @property
    def data_fingerprint(self) -> str:
        data: Any = (self.manifest or {}).get("data") or {}
        sha = str(data.get("sha256") or "")
        if not sha:
            return "-"
        rows = data.get("rows")
        return f"sha256 {sha[:12]}…" + (f", {rows:,} rows" if isinstance(rows, int) else "")

    def gate(self, name: str) -> Gate | None:
        return next((g for g in self.gates if g.name == name), None)


@dataclass
class RegistryView:
    model: str
    location: str
    versions: list[VersionView]  # oldest first

    def holder(self, status: str) -> VersionView | None:
        return next((v for v in self.versions if v.status == status), None)

    @property
    def gated_metrics(self) -> list[str]:
        """Every gate measured as a number in some version, the newest version's order first. A `required` gate
        (edge cases: handled or not) has no scale to plot."""
        names: list[str] = []
        for view in reversed(self.versions):
            for gate in view.gates:
                if gate.name not in names and gate.value is not None and gate.bound_kind != "required":
                    names.append(gate.name)
        return names


def read(reg: Registry, model: str) -> RegistryView:
    """The registry's view of `model`. Raises VersionNotFound naming the model and the registry if it has none."""
    check_model(model)
    records = reg.versions(model)
    if not records:
        raise VersionNotFound(f"model {model!r} has no versions in the registry at {reg.location}")
    views = []
    for record in records:
        try:
            manifest: dict[str, Any] | None = dict(reg.manifest(model, record["version"]))
            problem = ""
        except (BundleError, ValueError) as err:
            manifest, problem = None, f"bundle.json unreadable: {err}"
        view = VersionView(record, manifest, problem)
        view.gates = _gates(view)
        views.append(view)
    return RegistryView(model, reg.location, views)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _gates(view: VersionView) -> list[Gate]:
    """The gate report's entries; for a partial report (`{"passed": true}` and names), the index's summary
    with the candidate's metrics as values."""
    report = view.gate_report or {}
    entries: Any = report.get("gates")
    metrics = view.record.get("metrics") or {}
    gates = []
    if isinstance(entries, list) and entries:
        for entry in entries:
            if not isinstance(entry, dict) or "name" not in entry:
                continue
            gates.append(_gate(entry, metrics))
        return gates
    failed = set(view.record["gate"]["failed"])
    return [Gate(name, _number(metrics.get(name)), None, "", "fail" if name in failed else "pass")
            for name in view.record["gate"]["checked"]]


def _gate(entry: dict[str, Any], metrics: dict[str, float]) -> Gate:
    name = str(entry["name"])
    status = entry.get("status") or ("pass" if entry.get("passed") else "fail")
    value = _number(entry.get("value"))
    if value is None and "value" not in entry:
        value = _number(metrics.get(name))
    return Gate(name=name, value=value, bound=_number(entry.get("bound")),
                bound_kind=str(entry.get("bound_kind") or ""), status=str(status),
                baseline_value=_number(entry.get("baseline_value")),
                note=str(entry.get("note") or ""))
