"""The process layer: what every other layer stands on, and nothing of archopt above it.

- ``settings``    validated option models (pydantic; a mistake is one readable line);
- ``configfile``  reading the files a user hands over as options (bounded size and depth);
- ``progress``    a rich bar on a terminal, plain lines otherwise;
- ``devices``     seeds (Python, numpy, torch) and devices (``--device auto``);
- ``threads``     the CPU thread policy (intra-op threads on a busy machine);
- ``memory``      what this process may still allocate, and a refusal naming the estimate.

The exceptions themselves stand one floor lower, in :mod:`archopt.errors`.
"""

from typing import Any

__all__ = ["flush_denormal", "resolve_device", "seed_everything", "torch_generator"]


def __getattr__(name: str) -> Any:  # lazy: importing a sibling does not import torch
    if name in __all__:
        from archopt.runtime import devices

        return getattr(devices, name)
    raise AttributeError(f"module 'archopt.runtime' has no attribute {name!r}")
