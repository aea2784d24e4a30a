"""The hw_constraints node."""
