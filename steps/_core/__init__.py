"""What every step shares: errors and exit codes, the policy, files, datasets."""
