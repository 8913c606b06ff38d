"""The canary: its outcome, the analysis (PromQL and verdicts), the Kubernetes adapter and the local deployment."""
