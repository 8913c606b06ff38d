"""Side-by-side benchmarks against peer tools, with their results."""
