"""A run's folder: its files (outputs.py), who may write it (rundir.py) and what a run returns (summary.py)."""
