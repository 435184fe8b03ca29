"""Datasets: CoNLL files, named datasets, languages and label schemas. Knows nothing of models."""
