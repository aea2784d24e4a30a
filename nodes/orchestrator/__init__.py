"""The orchestrator node."""
