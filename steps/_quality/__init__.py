"""Quality: the data contract as Great Expectations checks and the folder of rows that passed them; the
gate's measures, its judging of each gate, and its report."""
