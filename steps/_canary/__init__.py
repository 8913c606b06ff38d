"""The canary: its outcome, the analysis (PromQL and verdicts), the Argo Rollouts watch and its Kubernetes adapter,
and the local deployment."""
