"""The structure optimisers by name (``--optimizer sng|asng``): the registry the CLI and
:func:`~archopt.structure.run.run_structure` read."""

from __future__ import annotations

from typing import Any

from archopt.errors import UnknownName
from archopt.structure.asktell import StructureOptimizer
from archopt.structure.asng import ASNG
from archopt.structure.distributions import StructureDistribution
from archopt.structure.sng import SNG

__all__ = ["OPTIMIZERS", "make_optimizer"]

#: The optimiser classes by name.
OPTIMIZERS: dict[str, type[StructureOptimizer]] = {"sng": SNG, "asng": ASNG}


def make_optimizer(name: str, distribution: StructureDistribution | int, **kwargs: Any
                   ) -> StructureOptimizer:
    """``"sng"`` or ``"asng"`` by name (``eta`` is ignored by ASNG, ``delta0``/``alpha`` by SNG).

    Raises: UnknownName for another name.
    """
    if name == "sng":
        kwargs.pop("delta0", None)
        kwargs.pop("alpha", None)
        return SNG(distribution, **kwargs)
    if name == "asng":
        kwargs.pop("eta", None)
        return ASNG(distribution, **{k: v for k, v in kwargs.items() if v is not None})
    raise UnknownName(f"unknown structure optimiser {name!r} (one of: sng, asng)")

