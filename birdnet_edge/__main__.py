"""Entry point for ``python -m birdnet_edge``."""

from birdnet_edge.cli.main import main

raise SystemExit(main())
