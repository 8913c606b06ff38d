"""What a platform team plugs into its monitoring stack, rendered by `mlops compile` into
manifests/generated/_monitoring/: the Grafana dashboard (dashboard.py) and the PrometheusRule (alerts.py)."""
