"""Supervised fine-tuning data rendered with the prompts the pipeline sends at inference."""
