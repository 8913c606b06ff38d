"""The expression languages Argo Workflows v4.1.2 evaluates, faithfully, for the local runner.

- `exprlang` (expr-lang v1.17.8): `{{=...}}` (`replace_expression`), valueFrom.expression and fromExpression
  (`compile_expr(text).run(argo_env(variables))`), retryStrategy and hook expressions (`eval_bool`), with Argo's
  environment (`argo_env`: dotted variables expanded, asInt, asFloat, toJson, jsonpath, sprig's functions under
  `sprig.`);
- `govaluate`: `when`, after `{{...}}` substitution (`should_execute`; bare words are strings);
- `depends`: `depends`/`dependencies` expanded (`expand`) and evaluated (`evaluate` over `task_results`) as
  Argo's DAG controller does.

Errors are `errors.LangError`s. `errors.Unsupported` means Argo would evaluate the construct but these modules
do not: `compile_expr` raises it before anything runs (so the runner can refuse the workflow up front), and a
few value-dependent cases raise it while running rather than give a result Argo would not.
"""
