"""The result-folder layer: everything a command leaves on disk, and how it gets there safely.

- ``folders``     atomic writes (temp file + rename), JSON / JSONL, ``ResultDir``, the
                  environment record; its public names are re-exported here;
- ``checkpoint``  the ``.pt`` checkpoint format (``weights_only`` plain data);
- ``locking``     one writer per result folder (a held lock with a holder record);
- ``plotting``    figures saved as PNG atomically (matplotlib on an explicit Agg canvas);
- ``sweeps``      one runner for a grid of trials, each writing its own result folder.
"""

from archopt.runs.folders import *  # noqa: F403 (the folder API, re-exported)
from archopt.runs.folders import __all__ as __all__
