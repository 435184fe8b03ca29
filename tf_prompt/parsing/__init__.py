"""Model replies to entity mentions: one module per reply format."""
