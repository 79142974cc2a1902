"""vigil core."""
