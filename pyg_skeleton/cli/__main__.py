"""``python -m pyg_skeleton.cli``: the same as ``python -m pyg_skeleton``."""
from __future__ import annotations

import sys

from pyg_skeleton.cli.main import main

if __name__ == '__main__':
    sys.exit(main(sys.argv[1:] or ['demo']))
