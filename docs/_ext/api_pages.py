"""Write the API reference pages from each subpackage's ``__all__``.

Called by ``generated_pages.py`` when the build starts, so that every public
name gets a page and no page lists a name that is gone. The pages are
written outside the source tree (see ``generated_pages.py``).
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence

# (module, title, intro, [(section title, predicate on (name, object))])
Section = tuple[str, callable]


def _is_loss(name, obj):
    return inspect.isclass(obj) and name.endswith('Loss')


def _pages() -> list[tuple[str, str, str, list[Section]]]:
    conv_all = set(importlib.import_module('pyg_skeleton.nn.conv').__all__)
    models_all = set(importlib.import_module('pyg_skeleton.nn.models').__all__)
    return [
        ('pyg_skeleton', 'pyg_skeleton',
         'Skeletons as data, and lifting 2D keypoints to 3D (see :doc:`/lifting`).', [
            ('Skeletons', lambda n, o: n == 'Skeleton'),
            ('Input checks', lambda n, o: 'validation' in n),
            ('Lifting 2D keypoints to 3D poses',
             lambda n, o: not inspect.ismodule(o) and not n.startswith('_')),
        ]),
        ('pyg_skeleton.inference', 'pyg_skeleton.inference',
         'Lifting keypoint files and streams (see :doc:`/lifting` and :doc:`/deploy`).', [
            ('Streaming', lambda n, o: n == 'Stream'),
            ('Helpers', lambda n, o: True),
        ]),
        ('pyg_skeleton.export', 'pyg_skeleton.export',
         'Verified export to ONNX and torch.export programs (see :doc:`/deploy`).', [
            ('Export', lambda n, o: True),
        ]),
        ('pyg_skeleton.keypoints', 'pyg_skeleton.keypoints',
         'Keypoint formats of 2D detectors and their readers (see :doc:`/keypoints`).', [
            ('Keypoints', lambda n, o: True),
        ]),
        ('pyg_skeleton.nn', 'pyg_skeleton.nn',
         'Operators, models and losses. The capability table on '
         ':doc:`/capabilities` is generated from these classes.', [
             ('Graph convolutions', lambda n, o: n in conv_all),
             ('Other operators', lambda n, o: n not in conv_all and n not in models_all
              and not _is_loss(n, o)),
             ('Models', lambda n, o: n in models_all and not _is_loss(n, o)),
             ('Losses', _is_loss),
         ]),
        ('pyg_skeleton.mesh', 'pyg_skeleton.mesh',
         'Reading meshes, HEM coarsening, pooling and multi-scale hierarchies.', [
             ('Meshes', lambda n, o: True),
         ]),
        ('pyg_skeleton.transforms', 'pyg_skeleton.transforms', 'Graph transforms.', [
            ('Transforms', lambda n, o: True),
        ]),
        ('pyg_skeleton.utils', 'pyg_skeleton.utils',
         'Graph algorithms (breadth-first search, edge lookup, components, faces to edges) '
         'and the input validators shared by the package.', [
             ('Graph algorithms', lambda n, o: not n.startswith(('check_', 'as_'))),
             ('Validators', lambda n, o: True),
         ]),
        ('pyg_skeleton.datasets', 'pyg_skeleton.datasets',
         'Motion capture, BVH files, virtual cameras and lifting samples.', [
             ('Data sets', lambda n, o: True),
         ]),
        ('pyg_skeleton.kinematics', 'pyg_skeleton.kinematics',
         'Bone decomposition and forward kinematics.', [
             ('Kinematics', lambda n, o: True),
         ]),
        ('pyg_skeleton.nn.models.self_adaptive', 'pyg_skeleton.nn.models.self_adaptive',
         'Self-adaptive pose by relation distillation (see :doc:`/self_adaptive`).', [
             ('Models', lambda n, o: inspect.isclass(o)),
             ('Relation pairs, training and losses', lambda n, o: not inspect.isclass(o)),
         ]),
        ('pyg_skeleton.metrics', 'pyg_skeleton.metrics', 'Pose and mesh metrics.', [
            ('Metrics', lambda n, o: True),
        ]),
        ('pyg_skeleton.training', 'pyg_skeleton.training',
         'Training lifting models from Python (see :doc:`/cli`).', [
             ('Training', lambda n, o: n in ('Trainer', 'TrainConfig')),
             ('Errors', lambda n, o: n.endswith('Error')),
             ('Checkpoints and helpers', lambda n, o: True),
         ]),
        ('pyg_skeleton.cli', 'pyg_skeleton.cli',
         'The ``pyg-skeleton`` command line (see :doc:`/cli`).', [
             ('Command line', lambda n, o: True),
         ]),
    ]


def api_pages(modules: Sequence[str] | None = None) -> dict[str, str]:
    """The reStructuredText of one page per subpackage, by module name.

    ``modules`` limits the pages to those modules (a small test build).
    """
    pages = {}
    for modname, title, intro, sections in _pages():
        if modules is not None and modname not in modules:
            continue
        mod = importlib.import_module(modname)
        public = [n for n in mod.__all__ if n != '__version__']
        objects = {n: getattr(mod, n) for n in public}
        # Submodules are documented on their own pages.
        objects = {n: o for n, o in objects.items() if not inspect.ismodule(o)}
        done = set()
        lines = [title, '=' * len(title), '', f'.. automodule:: {modname}',
                 '   :no-members:', '', intro, '', f'.. currentmodule:: {modname}', '']
        for sec_title, pred in sections:
            items = [n for n, o in objects.items() if n not in done and pred(n, o)]
            if not items:
                continue
            done.update(items)
            lines += [sec_title, '-' * len(sec_title), '',
                      '.. autosummary::', '   :toctree: ../generated', '   :nosignatures:', '']
            lines += [f'   {n}' for n in items] + ['']
        missing = set(objects) - done
        if missing:
            raise RuntimeError(f'{modname}: names in __all__ without a section: {sorted(missing)}')
        pages[modname] = '\n'.join(lines)
    return pages
