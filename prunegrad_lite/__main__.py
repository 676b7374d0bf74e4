"""``python -m prunegrad_lite`` runs the command-line interface."""

from prunegrad_lite.cli import main

raise SystemExit(main())
