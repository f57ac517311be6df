"""The ``cnnlab`` command: a thin shell over the Python API."""
