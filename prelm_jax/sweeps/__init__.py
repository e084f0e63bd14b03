"""Sweeps: many runs of one experiment (spec.py), run by an executor (executors.py),
gathered into one table and learning curves (report.py); `prelm sweep|report` (cli.py)."""
