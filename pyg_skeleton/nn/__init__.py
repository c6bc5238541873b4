from .topology import Topology
from .non_local import NonLocalBlock
from .conv import *  # noqa: F401,F403
from .conv import __all__ as conv_all

__all__ = ['Topology', 'NonLocalBlock'] + conv_all
