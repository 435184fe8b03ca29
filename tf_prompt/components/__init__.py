"""Step components that are not the LLM: file and MT translators, the spaCy and file annotators."""
