"""The expression languages Argo Workflows v4.1.2 evaluates, faithfully, for the local runner.

- `exprlang`: expr-lang (`{{=...}}`, valueFrom.expression, fromExpression, retryStrategy and hook expressions),
  with Argo's environment and the sprig functions under `sprig.`;
- `govaluate`: `when`, after `{{...}}` substitution (bare words are strings);
- `depends`: a task's `depends`/`dependencies`, expanded and evaluated as Argo's DAG controller does.

What Argo evaluates and these modules do not is refused with `errors.Unsupported`, naming the construct, so the
runner can refuse the workflow before it starts rather than give a result Argo would not.
"""
