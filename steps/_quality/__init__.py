"""Quality: the data contract as Great Expectations checks, the gate's measures and its report."""
