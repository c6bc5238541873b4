r"""``pyg_skeleton.utils.check_batch`` and ``whole_graphs``: the one check of
PyG's ``batch`` vector, against the vectors PyG's own ``Batch`` builds."""
from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data

from pyg_skeleton import validation
from pyg_skeleton.utils import check_batch, whole_graphs


def batch_of(sizes):
    return Batch.from_data_list([Data(num_nodes=n) for n in sizes]).batch


@pytest.mark.parametrize('graphs', [1, 4])
def test_whole_graphs_counts_the_graphs_of_a_pyg_batch(graphs):
    batch = batch_of([5] * graphs)
    assert whole_graphs(batch, 5 * graphs, 5, 'op') == graphs
    check_batch(batch_of([3, 1, 4]), 8, 'op')  # ragged but sorted: fine
    assert whole_graphs(torch.empty(0, dtype=torch.long), 0, 5, 'op') == 0


@pytest.mark.parametrize('sizes', [[4, 6], [6, 4], [5, 0, 5], [1, 9]])
def test_whole_graphs_names_the_first_row_in_another_graph(sizes):
    batch = batch_of(sizes)
    # The first row r whose graph is not r // 5, by a loop:
    row = next(r for r in range(10) if int(batch[r]) != r // 5)
    with pytest.raises(ValueError) as e:
        whole_graphs(batch, 10, 5, 'op', node='joint')
    assert str(e.value) == (
        f"'op' needs a disjoint batch of whole graphs: every graph must have "
        f"exactly 5 joints (row {row} is in graph {int(batch[row])}, not "
        f"{row // 5})")


def test_batch_errors_are_one_line_and_name_the_owner():
    cases = [
        (lambda: whole_graphs(batch_of([5, 5]), 9, 5, 'op'),
         "'op' needs a disjoint batch of whole graphs: every graph must have "
         "exactly 5 nodes, but the batch has 9 rows, not a multiple of 5"),
        (lambda: whole_graphs(batch_of([5, 5]), 5, 5, 'op'),
         "'op' needs a 'batch' vector that is one-dimensional with one entry "
         "per node (5; got shape (10,))"),
        (lambda: check_batch(batch_of([5, 5]).view(2, 5), 10, 'op'),
         "'op' needs a 'batch' vector that is one-dimensional with one entry "
         "per node (10; got shape (2, 5))"),
        (lambda: whole_graphs(batch_of([5, 5]).flip(0), 10, 5, 'op'),
         "'op' needs a sorted 'batch' vector, as in a "
         "'torch_geometric.data.Batch'"),
        (lambda: whole_graphs(batch_of([5]), 5, 0, 'op'),
         "'op' needs graphs of at least one node (got 0)"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as e:
            call()
        assert str(e.value) == message


def test_values_are_trusted_without_validation_and_on_meta():
    ragged = batch_of([4, 6])
    with validation(False):
        assert whole_graphs(ragged, 10, 5, 'op') == 2
        assert whole_graphs(ragged.flip(0), 10, 5, 'op') == 2
        # Shapes cost nothing and stay checked.
        with pytest.raises(ValueError, match='not a multiple of 5'):
            whole_graphs(ragged[:9], 9, 5, 'op')
    assert whole_graphs(ragged.to('meta'), 10, 5, 'op') == 2


class HostReads(torch.overrides.TorchFunctionMode):
    """Records the calls that read a tensor's values on the host (each a
    synchronisation on a GPU)."""
    READS = {'__bool__', 'item', 'nonzero', 'tolist', '__int__', '__float__', '__index__'}

    def __init__(self):
        super().__init__()
        self.reads = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, '__name__', '')
        if name in self.READS:
            self.reads.append(name)
        return func(*args, **(kwargs or {}))


def test_whole_graphs_reads_the_batch_once():
    batch = batch_of([5] * 4)
    with HostReads() as mode:
        assert whole_graphs(batch, 20, 5, 'op') == 4
    assert mode.reads == ['__bool__']
    # a sorted, ragged batch is still reported by its first wrong row
    with pytest.raises(ValueError, match=r'row 4 is in graph 1, not 0'):
        whole_graphs(batch_of([4, 6]), 10, 5, 'op')
