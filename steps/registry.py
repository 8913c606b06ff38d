"""`mlops registry`: list and show a model's versions, promote one, roll production back, write its page.

python -m steps.registry list|show|promote|rollback --model M [--registry LOC] [--json]
python -m steps.registry report --model M [--registry LOC] --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from steps._core.documents import BundleManifest, VersionRecord
from steps._core.errors import run
from steps._model.bundle import BundleError
from steps._registry.page import write_report
from steps._storage.registry import Registry, RegistryError, parse_version

_KEY_METRICS = 3


def _metrics(record: VersionRecord, limit: int | None = _KEY_METRICS) -> str:
    """The metrics the policy gates on first (in the policy's order), then the rest."""
    metrics = record["metrics"]
    checked = [name for name in record["gate"]["checked"] if name in metrics]
    names = checked + sorted(name for name in metrics if name not in checked)
    return " ".join(f"{name}={metrics[name]:.4g}" for name in names[:limit])


def _when(at: str | None) -> str:
    return (at or "")[:16].replace("T", " ")


def table(records: list[VersionRecord]) -> str:
    header = ("VERSION", "STATUS", "CREATED (UTC)", "COMMIT", "TRIGGER", "METRICS", "LAST CHANGE")
    rows = [
        (
            f"v{r['version']}",
            r["status"],
            _when(r["created_at"]),
            (r["git_commit"] or "-")[:10],
            r["reason"] or "-",
            _metrics(r) or "-",
            r["history"][-1]["why"] if r["history"] else "-",
        )
        for r in reversed(records)  # newest first, as people read a release list
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]
    )


def describe(model: str, record: VersionRecord, manifest: BundleManifest) -> str:
    """`show`: the index record, and the lineage from the version's stored bundle.json (whose fields a
    hand-made bundle may lack)."""
    data: dict[str, Any] = dict(manifest.get("data") or {})
    gate = record["gate"]
    lines = [
        f"{model} v{record['version']}  {record['status']}",
        f"  fingerprint   {record['fingerprint']}",
        f"  created       {record['created_at']}",
        f"  git commit    {record['git_commit'] or '-'}",
        f"  trigger       {record['reason'] or '-'}",
        f"  data          {data.get('uri', '-')} (sha256 {str(data.get('sha256', '-'))[:12]}…, "
        f"rows {data.get('rows', '-')})",
        f"  estimator     {manifest.get('estimator', '-')} {json.dumps(manifest.get('params', {}), sort_keys=True)}",
        f"  metrics       {_metrics(record, None) or '-'}",
        f"  gates         {'passed' if gate['passed'] else 'failed: ' + ', '.join(gate['failed'])}",
        "  files",
        *(f"    {name}  sha256 {sha}" for name, sha in sorted(record["files"].items())),
        "  history",
        *(
            f"    {_when(h['at'])}  {h['from'] or '(new)'} -> {h['to']}  by {h['by']}: {h['why']}"
            for h in record["history"]
        ),
    ]
    return "\n".join(lines)


def _changed_with(reg: Registry, model: str, record: VersionRecord) -> list[VersionRecord]:
    """Other versions moved by the same update (an archived production, a superseded canary)."""
    at = record["history"][-1]["at"]
    return [
        r
        for r in reg.versions(model)
        if r["version"] != record["version"] and r["history"] and r["history"][-1]["at"] == at
    ]


def command(args: argparse.Namespace) -> tuple[Any, str]:
    """Run one subcommand; returns (the JSON answer, the human one)."""
    reg = Registry.open(args.registry)
    model = args.model
    if args.command == "list":
        records = reg.versions(model)
        answer = {"model": model, "versions": records}  # the documented shape: {"versions": [...]}
        if not records:
            return answer, f"{model}: no versions in {reg.location}"
        return answer, table(records)
    if args.command == "show":
        record = reg.get(model, parse_version(args.version))
        try:
            manifest = reg.manifest(model, record["version"])
        except BundleError as err:
            raise RegistryError(str(err)) from err
        return {"record": record, "bundle": manifest}, describe(model, record, manifest)
    if args.command == "report":
        index = write_report(reg, model, args.out)
        return {"model": model, "index": str(index)}, f"registry: {model}: page written to {index}"
    if args.command == "promote":
        version = parse_version(args.version)
        before = reg.get(model, version)["status"]
        record = reg.promote(model, version, args.to, reason=args.reason)
        if before == record["status"]:
            return {"record": record, "changed": []}, f"registry: {model} v{record['version']} is already {args.to}"
        others = _changed_with(reg, model, record)
        note = "".join(f", v{r['version']} {r['status']}" for r in others)
        text = f"registry: {model} v{record['version']} {before} -> {record['status']}{note}"
        return {"record": record, "changed": others}, text
    moved = reg.rollback(model, reason=args.reason)
    old, new = moved["archived"], moved["production"]
    text = f"registry: {model} rolled back: v{old['version']} archived, v{new['version']} production"
    return moved, text


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", required=True, help="the model name (gates/<model>.yaml)")
    common.add_argument("--registry", default=None, help="folder, file:// or s3://bucket/prefix")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser = argparse.ArgumentParser(prog="mlops registry", description="Read and move a model's lifecycle.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", parents=[common], help="every version, newest first")
    show = sub.add_parser("show", parents=[common], help="one version's record, lineage and history")
    show.add_argument("--version", default="latest", help="a number, production, canary or latest (default)")
    promote = sub.add_parser("promote", parents=[common], help="move a version to canary or production")
    promote.add_argument("--version", required=True, help="a number, or canary")
    promote.add_argument("--to", choices=("canary", "production"), default="production")
    promote.add_argument("--reason", default="", help="recorded in the version's history")
    rollback = sub.add_parser("rollback", parents=[common], help="production back to the previous one")
    rollback.add_argument("--reason", default="", help="recorded in the versions' history")
    report = sub.add_parser("report", parents=[common],
                            help="a static page of every version: DIR/index.html and DIR/versions/<n>.html")
    report.add_argument("--out", type=Path, required=True, help="the folder to write (replaced whole)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def body() -> int:
        answer, text = command(args)
        print(json.dumps(answer, indent=2, sort_keys=True) if args.json else text)
        return 0

    return run("registry", body)


if __name__ == "__main__":
    sys.exit(main())
