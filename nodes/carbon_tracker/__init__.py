"""The carbon_tracker node."""
