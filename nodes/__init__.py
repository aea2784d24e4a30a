"""The five SustainML nodes, installed as the package ``sustainml_nodes``."""
