"""The result-folder layer: everything a command leaves on disk, and how it gets there safely.

- ``folders``     atomic writes (temp file + rename), JSON / JSONL, ``ResultDir``, the
                  environment record; its public names are re-exported here;
- ``checkpoint``  the ``.pt`` checkpoint format (``weights_only`` plain data);
- ``locking``     one writer per result folder (a held lock with a holder record);
- ``plotting``    figures saved as PNG atomically (matplotlib on an explicit Agg canvas);
- ``sweeps``      one runner for a grid of trials, each writing its own result folder.
"""

from archopt.runs.folders import (
    WRITE_ERRNOS,
    ResultDir,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    environment_info,
    read_json,
    read_jsonl,
    to_jsonable,
    torch_load,
    write_error,
    write_error_kept,
)

__all__ = [
    "WRITE_ERRNOS",
    "ResultDir",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "environment_info",
    "read_json",
    "read_jsonl",
    "to_jsonable",
    "torch_load",
    "write_error",
    "write_error_kept",
]
