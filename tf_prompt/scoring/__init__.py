"""Scoring: entity-level scores with seqeval's rules (evaluate.py), a run's metrics (metrics.py) and
the error class of each entity (errors.py)."""
