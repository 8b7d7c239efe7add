"""``python -m ipyassistant``: the ``ipyassistant`` command, wherever scripts are installed."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
