"""The local deployment (`mlops deploy`) and the local canary: servers, deployment state, router, control client,
measurements, replayed traffic, the canary controller and the Prometheus scrape configuration."""
