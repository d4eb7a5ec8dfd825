"""``python -m gateway`` is the ``switchboard`` command."""

from gateway.cli import main

raise SystemExit(main())
