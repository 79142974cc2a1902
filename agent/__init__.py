"""vigil agent."""
