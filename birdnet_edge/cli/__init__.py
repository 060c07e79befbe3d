"""The ``birdnet-edge`` command line: one module per command."""
