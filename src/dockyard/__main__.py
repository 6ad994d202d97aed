"""Allow `python -m dockyard`."""

from dockyard.cli.main import main

raise SystemExit(main())
