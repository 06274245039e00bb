"""``python -m sojourn`` runs the CLI."""

from sojourn.cli import main

raise SystemExit(main())
