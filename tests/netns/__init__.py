"""Network-namespace "hosts" for the multi-host tests (``tests/test_multihost.py``)."""
