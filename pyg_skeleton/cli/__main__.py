"""``python -m pyg_skeleton`` / ``python -m pyg_skeleton.cli``.

With a subcommand (``train``, ``evaluate``, ...) this is the ``pyg-skeleton``
command line. Without arguments it runs the main job on defaults: trains the
default model (SemGCN) briefly on the built-in **synthetic** poses, evaluates
it and prints the report (about a minute on 2 CPU cores; outputs go to a new
temporary folder unless ``demo --out DIR`` is given; nothing is read or
downloaded).
"""
import sys

from pyg_skeleton.cli.main import main

if __name__ == '__main__':
    sys.exit(main(sys.argv[1:] or ['demo']))
