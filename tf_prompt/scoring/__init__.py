"""Scores predictions against gold tags (seqeval's entity rules)."""
