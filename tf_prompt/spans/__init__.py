"""Entity strings to spans of the source text to BIO tags: alignment, self-checks, combination rules."""
