"""vigil events."""
