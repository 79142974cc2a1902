"""vigil projections."""
