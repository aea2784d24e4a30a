"""The five SustainML nodes, installed as the package ``sustainml_nodes``: pyproject.toml maps this folder,
``nodes/``, to that name (``package-dir``). Each node imports the library ``sustainml`` and never another
node (README, "Layers"; ``tests/test_layers.py``)."""
