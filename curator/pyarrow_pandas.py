"""Keep pyarrow from importing pandas into processes that never use it.

pyarrow asks whether pandas is installed the first time a process builds an array from Python
values (`pa.array`, a compute call with a Python scalar): that probe imports pandas, ~0.15
CPU-s and ~40 MB, although curator's own code never touches a pandas object. The probe is soft
(`raise_=False`) and remembered, while every call that needs pandas for real (`to_pandas`,
`from_pandas`) asks again with `raise_=True` and then imports it (pyarrow's
`_PandasAPIShim._check_import`). So failing the first soft probe once, with pandas hidden for
that one call, removes the import and keeps every pandas conversion working.
tests/test_pyarrow_pandas.py checks both halves against the installed pyarrow.

Called by curator's own processes only (the `curate` command's driver, the local workers'
fork server through curator.worker_preload): in a user's process that passes pandas objects
to pa.array, the probe should find pandas.
"""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder

import pyarrow as pa


class _HidePandas(MetaPathFinder):
    """A finder that fails `import pandas` (a None in sys.modules would not do: pyarrow's
    Cython import takes it from there as the module)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] == "pandas":
            raise ImportError("pandas hidden from pyarrow's probe (curator.pyarrow_pandas)")


def skip_pandas_probe() -> None:
    """Answer pyarrow's "is pandas installed?" probe with no, unless pandas is loaded already."""
    if "pandas" in sys.modules:
        return  # imported already: the probe costs nothing
    finder = _HidePandas()
    sys.meta_path.insert(0, finder)
    try:
        pa.array([0])  # runs the soft probe, which fails and is remembered
    finally:
        sys.meta_path.remove(finder)
