"""``python -m carrier_sandbox``: see ``carrier_sandbox.cli``."""

from carrier_sandbox.cli import main

raise SystemExit(main())
