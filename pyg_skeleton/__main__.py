"""``python -m pyg_skeleton`` / ``python -m pyg_skeleton.cli``.

With a subcommand (``train``, ``evaluate``, ``lift``, ...) this is the
``pyg-skeleton`` command line. Without arguments it runs the main job
(``pyg-skeleton demo``): it lifts held-out sequences of the built-in real
motion (CMU) with the bundled lifter and reports their error, lifts one of
them from a keypoint file as a user would, and trains a small lifter from
scratch (about a minute on 2 CPU cores; outputs go to a new temporary
folder unless ``demo --out DIR`` is given; nothing is downloaded).
"""
from __future__ import annotations

import sys

from pyg_skeleton.cli.main import main

if __name__ == '__main__':
    sys.exit(main(sys.argv[1:] or ['demo']))
