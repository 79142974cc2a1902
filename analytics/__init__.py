"""vigil analytics."""
