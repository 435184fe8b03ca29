"""Small helpers with no knowledge of NER: atomic file writes, JSON text, key redaction."""
