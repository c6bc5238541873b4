r"""The checks of PyG's :obj:`batch` vector for the operators and models that
take one (:class:`~pyg_skeleton.nn.NonLocalBlock`,
:class:`~pyg_skeleton.nn.HGN`, :func:`~pyg_skeleton.mesh.hem_pool` and
:func:`~pyg_skeleton.mesh.hem_unpool`).

A disjoint batch stacks the nodes of :math:`B` graphs, :obj:`x` of shape
:obj:`[N_1 + ... + N_B, C]`, and its :obj:`batch` vector gives the graph of
every row, sorted, as a :class:`~torch_geometric.data.Batch` builds it. An
operator on a fixed node set reads a batch of **whole graphs** of :math:`N`
nodes each as the static batch :obj:`x.view(B, N, C)`:
:func:`whole_graphs` is the one check that this view is right, so that a
ragged or shuffled batch raises instead of mixing graphs.
"""
from __future__ import annotations

import torch
from torch import Tensor


def check_batch(batch: Tensor, num_rows: int, owner: str) -> None:
    r"""Validates the :obj:`batch` vector of a disjoint batch of
    :obj:`num_rows` rows: one-dimensional, one entry per row and, when the
    operator may read values (``pyg_skeleton.nn.topology.checks_data``:
    with :func:`~pyg_skeleton.set_validation` on, not on the :obj:`meta`
    device, not under :func:`torch.compile`), sorted.

    Args:
        batch (torch.Tensor): The batch vector.
        num_rows (int): The rows of the features it describes.
        owner (str): The operator named by the errors.

    Raises:
        ValueError: If :obj:`batch` has another shape, or is not sorted.
    """
    # Imported here: pyg_skeleton.nn imports this package.
    from pyg_skeleton.nn.topology import checks_data

    _check_shape(batch, num_rows, owner)
    if checks_data(batch) and _unsorted(batch):
        raise ValueError(f"'{owner}' needs a sorted 'batch' vector, as in a "
                         f"'torch_geometric.data.Batch'")


def _check_shape(batch: Tensor, num_rows: int, owner: str) -> None:
    if batch.dim() != 1 or batch.numel() != num_rows:
        raise ValueError(f"'{owner}' needs a 'batch' vector that is one-dimensional with "
                         f"one entry per node ({num_rows}; got shape {tuple(batch.shape)})")


def _unsorted(batch: Tensor) -> bool:
    return batch.numel() > 1 and bool((batch[1:] < batch[:-1]).any())


def whole_graphs(batch: Tensor, num_rows: int, num_nodes: int, owner: str, *,
                 node: str = 'node') -> int:
    r"""Returns the number of graphs :math:`B` of a disjoint batch of
    :obj:`num_rows` rows after checking that it holds whole graphs of
    :obj:`num_nodes` nodes each (rows :math:`bN, \dots, bN + N - 1` are
    graph :math:`b`): the features may then be viewed as the static batch
    :obj:`[B, N, ...]`.

    The shapes are always checked; the values of :obj:`batch` (a host
    synchronisation) only where :func:`check_batch` reads them, otherwise
    the batch is trusted to be whole graphs.

    Args:
        batch (torch.Tensor): The batch vector :obj:`[B N]`.
        num_rows (int): The rows of the features it describes.
        num_nodes (int): The nodes :math:`N` of every graph.
        owner (str): The operator named by the errors.
        node (str, optional): What a node is called in the errors, *e.g.*
            :obj:`'joint'`. (default: :obj:`'node'`)

    Raises:
        ValueError: If :obj:`num_nodes` is not positive, :obj:`num_rows`
            is not a multiple of it, :obj:`batch` fails :func:`check_batch`,
            or a graph has another number of nodes (the message names the
            first row in the wrong graph).
    """
    # Imported here: pyg_skeleton.nn imports this package.
    from pyg_skeleton.nn.topology import checks_data

    if num_nodes < 1:
        raise ValueError(f"'{owner}' needs graphs of at least one {node} (got {num_nodes})")
    what = (f"'{owner}' needs a disjoint batch of whole graphs: every graph must have "
            f"exactly {num_nodes} {node}s")
    if num_rows % num_nodes != 0:
        raise ValueError(f"{what}, but the batch has {num_rows} rows, not a multiple of "
                         f"{num_nodes}")
    _check_shape(batch, num_rows, owner)
    if checks_data(batch) and num_rows:
        # Row r of whole graphs is in graph r // N, which also makes the
        # batch sorted: one host read checks both (a synchronisation on a
        # GPU), and only a failed check looks at which one failed.
        graph = batch.view(-1, num_nodes) - torch.arange(
            num_rows // num_nodes, device=batch.device, dtype=batch.dtype).unsqueeze(1)
        wrong = graph.view(-1) != 0
        if bool(wrong.any()):
            check_batch(batch, num_rows, owner)
            r = int(wrong.nonzero()[0, 0])
            raise ValueError(f"{what} (row {r} is in graph {int(batch[r])}, not "
                             f"{r // num_nodes})")
    return num_rows // num_nodes
