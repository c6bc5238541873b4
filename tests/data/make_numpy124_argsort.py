"""Fixture of NumPy 1.24.4's argsort(kind='quicksort') on tie-heavy arrays.
Run (NumPy 1.24.4, Python 3.11):
    python make_numpy124_argsort.py OUT.npz PACKAGE/mesh/coarsening.py
The adversarial input (McIlroy's "killer adversary", run against the
package's introsort port loaded from its source file) forces the heapsort
fallback; NumPy's own output on it is what is stored."""
import sys
import numpy as np
assert np.__version__ == '1.24.4', np.__version__

src = open(sys.argv[2]).read()
# only the pure-Python sort is needed (the adversary drives it with its own
# comparisons): run the port's sort functions alone, without the package
ns = {}
start = src.index('_SMALL_QUICKSORT = 15')
end = src.index('def match_official')
body = src[start:end]
body = body[:body.index('def legacy_argsort')] + body[body.index('def _introsort'):]
exec('from typing import List, Tuple\n' + body, ns)
_introsort = ns['_introsort']


def adversary(n):
    gas = n
    val = [gas] * n
    state = {'solid': 0, 'cand': 0}

    def freeze(x):
        val[x] = state['solid']
        state['solid'] += 1

    class K:
        __slots__ = ('i',)

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

    _introsort([K(i) for i in range(n)])
    return np.array(val, dtype=np.float64)


rng = np.random.default_rng(20)
arrays = []
for n in list(range(0, 70)) + [100, 255, 256, 257, 1000]:
    for k in (1, 2, 3, 7, max(min(n, 40), 1)):
        arrays.append(rng.integers(0, k, n).astype(np.float64))
arrays.append(np.repeat(np.arange(20.0), 30))           # sorted runs
arrays.append(np.repeat(np.arange(20.0), 30)[::-1].copy())
arrays.append(np.tile(np.arange(7.0), 90))              # organ pipe-ish
adv = [adversary(n) for n in (64, 100, 500)]
# one flat array each (thousands of tiny npz members would be mostly headers)
cases = arrays + adv
values = np.concatenate([np.zeros(0)] + cases)
offsets = np.cumsum([0] + [len(a) for a in cases])
# every second generated array is sorted as float32, as the official degrees
order = np.concatenate([np.zeros(0, np.int64)] + [
    np.argsort(a.astype(np.float32) if i % 2 and i < len(arrays) else a,
               kind='quicksort') for i, a in enumerate(cases)])
np.savez_compressed(
    sys.argv[1], values=values, offsets=offsets,
    argsort=order.astype(np.int16),
    float32=np.array([bool(i % 2 and i < len(arrays)) for i in range(len(cases))]),
    adversarial=np.arange(len(arrays), len(cases)),
    numpy_version=np.array(np.__version__))
print(len(arrays), 'arrays,', len(adv), 'adversarial')
