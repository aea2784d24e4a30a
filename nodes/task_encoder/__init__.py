"""The task_encoder node."""
