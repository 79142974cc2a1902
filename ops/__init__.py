"""vigil ops."""
