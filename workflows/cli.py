"""The `mlops` command line. Each subcommand is a module's `main(argv)`, imported only when it runs, so
`mlops --help` stays fast (hera and pandas take seconds to import)."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

# name -> (one-line help, module whose `main(argv)` runs it). A new subcommand is one more line here.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("a policy for a new model, inferred from a dataset: `init --data FILE --target COLUMN`", "steps.init"),
    "data": ("synthetic datasets: `data generate --rows N --seed S --out PATH [--drift X] [--task T]`",
             "workflows.cli"),
    "compile": ("render manifests/generated/ from the policies; --check fails when it is stale", "workflows.render"),
    "lint": ("schema and semantic checks of rendered YAML", "workflows.lint"),
    "run": ("run a WorkflowTemplate locally: the same YAML Argo runs", "workflows.local.run"),
    "registry": ("list, show, promote and roll back model versions; `registry report` writes their page",
                 "steps.registry"),
    "drift": ("drift check: `drift check --model M [--current DATA | --prometheus URL | --metrics-url URL] "
              "[--webhook URL]`", "steps.drift"),
    "events": ("local webhook EventSource + retrain Sensors: `events serve [--port P] [--token-file F]`",
               "workflows.local.events"),
    "serve": ("serve a model version: `serve --model M@V [--registry LOC] [--port P]` or `--model-dir DIR`",
              "steps.serve"),
    "deploy": ("local deployment: a router before a stable and a canary server, with a control endpoint",
               "steps.deploy"),
    "demo": ("the whole loop on this machine in about 3 minutes: train, serve, drift, retrain, canary, reject",
             "workflows.demo"),
    "submit": ("apply a model's templates to an Argo Server and submit a Workflow from one: `submit training -p k=v`",
               "workflows.submit"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    listing = "\n".join(f"  {name:<10} {summary}" for name, (summary, _) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="mlops",
        description="The MLOps loop as code on Argo Workflows, and on a laptop.",
        epilog=f"commands:\n{listing}\n\n`mlops COMMAND --help` shows a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    if not argv:
        parser.print_help()
        return 2
    args = parser.parse_args(argv)
    if args.command == "data":
        return data_main(args.args)
    module = importlib.import_module(COMMANDS[args.command][1])
    return int(module.main(args.args) or 0)


def data_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mlops data", description="Synthetic datasets.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    generate = actions.add_parser("generate", help="write a reference model's synthetic dataset (CSV or Parquet)")
    generate.add_argument("--rows", type=int, required=True)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--out", type=Path, required=True, help="a .csv or .parquet file")
    generate.add_argument("--drift", type=float, default=0.0, help="0..1: shift more than a third of the features")
    # The names match steps._core.synthetic.TASK_GENERATORS (not imported here: `mlops --help` stays fast).
    generate.add_argument("--task", choices=("binary", "regression", "multiclass"), default="binary",
                          help="binary: card transactions, target is_fraud (the default); regression: store "
                          "demand, target units_sold; multiclass: support tickets, target team")
    args = parser.parse_args(argv)

    from steps._core.data import write_frame
    from steps._core.errors import run
    from steps._core.synthetic import TASK_GENERATORS, generate_named

    def body() -> int:
        name = TASK_GENERATORS[args.task]
        frame = generate_named(name, args.rows, seed=args.seed, drift=args.drift)
        write_frame(frame, args.out)
        print(f"wrote {len(frame)} rows to {args.out} ({name}, {args.task})")
        return 0

    return run("mlops data generate", body)


if __name__ == "__main__":
    sys.exit(main())
