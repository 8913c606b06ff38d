"""The register step: store a gated bundle as a registry version, `staged` if it passed, else `rejected`.

Exit 0 staged; 1 rejected (recorded, so the workflow can end Failed); 2 bad input; 3 storage unreachable.
With --pushgateway URL (or $MLOPS_PUSHGATEWAY_URL) the outcome also goes to a Pushgateway (job mlops-training);
a push that fails is reported on stderr and changes neither the registration nor the exit code.
With --registry-report-out DIR it writes the model's registry page there (DIR/index.html), as the registry stands
after this registration; a page that cannot be written costs a warning, never the registration.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import cast

from steps._core.documents import GateReport, VersionRecord
from steps._core.errors import StepError, UsageError, run
from steps._core.files import write_text
from steps._model import bundle as _bundle
from steps._quality.pushgateway import push_training
from steps._registry.page import write_report
from steps._storage.registry import Registry, check_model


def read_gate_report(path: Path, model: str) -> GateReport:
    """The gate step's gate.json; it must say `passed` (true or false) and, if it names a model, this one.
    Those are the fields register decides by; the registry records the rest as far as the report has it."""
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise UsageError(f"--gate-report {path}: no such file") from err
    except (OSError, ValueError) as err:
        raise UsageError(f"--gate-report {path}: not a readable JSON file: {err}") from err
    if not isinstance(report, dict):
        raise UsageError(f"--gate-report {path}: must be a JSON object, found {type(report).__name__}")
    if not isinstance(report.get("passed"), bool):
        raise UsageError(f"--gate-report {path}: field 'passed' must be true or false, got {report.get('passed')!r}")
    if report.get("model", model) != model:
        raise UsageError(f"--gate-report {path}: field 'model' is {report['model']!r}, but --model is {model!r}")
    return cast(GateReport, report)


def register(
    bundle: Path,
    gate_report: Path,
    model: str,
    registry: str | None = None,
    git_commit: str | None = None,
    reason: str | None = None,
) -> tuple[VersionRecord, bool]:
    """Register the bundle; returns (the version's record, whether this call created it)."""
    check_model(model)
    report = read_gate_report(gate_report, model)
    reg = Registry.open(registry)
    try:  # not verified yet (register() does that): the fingerprint may be missing or not a string
        fingerprint = _bundle.read_manifest(bundle).get("fingerprint")
    except _bundle.BundleError as err:
        raise UsageError(f"--bundle {bundle}: {err}") from err
    # Only for the message: register() itself is idempotent whatever happens in between.
    existed = isinstance(fingerprint, str) and fingerprint and reg.find(model, fingerprint) is not None
    try:
        record = reg.register(
            model, bundle, passed=report["passed"], gate_report=report, reason=reason, git_commit=git_commit
        )
    except OSError as err:  # an unreadable bundle file: bad input, never the "rejected" exit code 1
        raise UsageError(f"--bundle {bundle}: {err}") from err
    return record, not existed


def summary(model: str, record: VersionRecord, created: bool) -> str:
    version, status = record["version"], record["status"]
    fingerprint = f"fingerprint {record['fingerprint'][:8]}…"
    if not created:
        return f"register: {model} v{version} already registered, now {status} ({fingerprint})"
    if status == "rejected":
        return f"register: {model} v{version} rejected: {record['history'][-1]['why']} ({fingerprint})"
    return f"register: {model} v{version} {status} ({fingerprint})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m steps.register", description=__doc__)
    parser.add_argument("--bundle", type=Path, required=True, help="the model bundle folder (train's --bundle)")
    parser.add_argument("--gate-report", type=Path, required=True, help="the gate step's gate.json")
    parser.add_argument("--model", required=True, help="the model name (gates/<model>.yaml)")
    parser.add_argument("--registry", default=None, help="folder, file:// or s3://bucket/prefix")
    parser.add_argument("--git-commit", default="", help="overrides the bundle's git_commit")
    parser.add_argument("--reason", default="", help="why this training ran; overrides the bundle's reason")
    parser.add_argument("--version-out", type=Path, default=None, help="write the version number here")
    parser.add_argument("--pushgateway", default=None,
                        help="push the outcome to this Pushgateway (default: $MLOPS_PUSHGATEWAY_URL)")
    parser.add_argument("--registry-report-out", type=Path, default=None,
                        help="write the model's registry page into this folder (DIR/index.html), best effort")
    return parser


def report_to_pushgateway(url: str, model: str, record: VersionRecord, gate_report: Path) -> None:
    """Push the outcome for dashboards and alerts. Best effort: the version is already registered and the run's
    verdict is the registry's, so a Pushgateway that is down or refuses costs a warning, never the run."""
    try:
        push_training(url, model, record, read_gate_report(gate_report, model))
    except StepError as err:
        print(f"register: warning: metrics not pushed: {err}", file=sys.stderr)
    except Exception as err:  # a gate report with odd entries, a malformed URL: still only the metrics are lost
        print(f"register: warning: metrics not pushed: {type(err).__name__}: {err}", file=sys.stderr)


def write_registry_page(out: Path, model: str, registry: str | None) -> None:
    """The registry page as it stands after this registration. Best effort, like the Pushgateway: the version is
    registered whatever happens to its page."""
    try:
        index = write_report(Registry.open(registry), model, out, flag="--registry-report-out")
    except StepError as err:
        print(f"register: warning: registry page not written: {err}", file=sys.stderr)
    except Exception as err:  # a full disk, an odd record: only the page is lost
        print(f"register: warning: registry page not written: {type(err).__name__}: {err}", file=sys.stderr)
    else:
        print(f"register: registry page {index}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def body() -> int:
        record, created = register(
            args.bundle, args.gate_report, args.model, args.registry, args.git_commit or None, args.reason or None
        )
        if args.version_out is not None:
            try:
                write_text(args.version_out, str(record["version"]))
            except OSError as err:
                raise UsageError(f"--version-out {args.version_out}: cannot write: {err}") from err
        print(summary(args.model, record, created))
        pushgateway = args.pushgateway or os.environ.get("MLOPS_PUSHGATEWAY_URL") or None
        if pushgateway:
            report_to_pushgateway(pushgateway, args.model, record, args.gate_report)
        if args.registry_report_out is not None:
            write_registry_page(args.registry_report_out, args.model, args.registry)
        return 0 if record["gate"]["passed"] else 1

    return run("register", body)


if __name__ == "__main__":
    sys.exit(main())
