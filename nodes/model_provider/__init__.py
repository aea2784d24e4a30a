"""The model_provider node."""
