"""``python -m fedoracloud.cli``: the ``fedoracloud`` command."""

import sys

from . import main

sys.exit(main())
