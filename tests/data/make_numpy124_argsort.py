"""Fixture of NumPy 1.24.4's argsort(kind='quicksort') on tie-heavy arrays.

Two steps (from the repository root):

    PYTHONPATH=$PWD python tests/data/make_numpy124_argsort.py inputs /tmp/argsort_inputs.npz
    /tmp/np124/bin/python tests/data/make_numpy124_argsort.py sort \
        /tmp/argsort_inputs.npz tests/data/numpy124_argsort.npz

The first (any NumPy, with the package) draws the arrays and builds three
inputs with McIlroy's "killer adversary" run against the package's
introsort port, which drive the quicksort past its depth limit into the
heapsort fallback. The second (NumPy 1.24.4) stores NumPy's own argsort of
every array."""
from __future__ import annotations

import sys

import numpy as np


def adversary(n):
    from pyg_skeleton.mesh.coarsening import _introsort
    gas = n
    val = [gas] * n
    state = {'solid': 0, 'cand': 0}

    def freeze(x):
        val[x] = state['solid']
        state['solid'] += 1

    class Key:
        __slots__ = ('i', )

        def __init__(self, i):
            self.i = i

        def __lt__(self, other):
            x, y = self.i, other.i
            if val[x] == gas and val[y] == gas:
                freeze(x if x == state['cand'] else y)
            if val[x] == gas:
                state['cand'] = x
            elif val[y] == gas:
                state['cand'] = y
            return val[x] < val[y]

    _introsort([Key(i) for i in range(n)])
    return np.array(val, dtype=np.float64)


def inputs(dst):
    rng = np.random.default_rng(20)
    arrays = []
    for n in list(range(0, 70)) + [100, 255, 256, 257, 1000]:
        for k in (1, 2, 3, 7, max(min(n, 40), 1)):
            arrays.append(rng.integers(0, k, n).astype(np.float64))
    arrays.append(np.repeat(np.arange(20.0), 30))  # sorted runs
    arrays.append(np.repeat(np.arange(20.0), 30)[::-1].copy())
    arrays.append(np.tile(np.arange(7.0), 90))
    adv = [adversary(n) for n in (64, 100, 500)]
    cases = arrays + adv
    # one flat array (hundreds of tiny npz members would be mostly headers)
    np.savez_compressed(
        dst, values=np.concatenate([np.zeros(0)] + cases),
        offsets=np.cumsum([0] + [len(a) for a in cases]),
        # every second drawn array is sorted as float32, as the official
        # degrees are
        float32=np.array([bool(i % 2) and i < len(arrays)
                          for i in range(len(cases))]),
        adversarial=np.arange(len(arrays), len(cases)))
    print(len(arrays), 'arrays,', len(adv), 'adversarial')


def sort(src, dst):
    assert np.__version__ == '1.24.4', np.__version__
    z = dict(np.load(src))
    off = z['offsets']
    parts = [np.zeros(0, np.int64)]
    for i in range(len(off) - 1):
        a = z['values'][off[i]:off[i + 1]]
        if z['float32'][i]:
            a = a.astype(np.float32)
        parts.append(np.argsort(a, kind='quicksort'))
    z['argsort'] = np.concatenate(parts).astype(np.int16)
    z['numpy_version'] = np.array(np.__version__)
    np.savez_compressed(dst, **z)


if __name__ == '__main__':
    if sys.argv[1] == 'inputs':
        inputs(sys.argv[2])
    else:
        sort(sys.argv[2], sys.argv[3])
