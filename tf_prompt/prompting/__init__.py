"""Prompt templates (sandboxed Jinja, versioned files) and several sentences per prompt."""
