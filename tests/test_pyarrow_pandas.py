"""pyarrow's pandas probe answered without importing pandas, and pandas still there when a
conversion needs it (curator.pyarrow_pandas relies on pyarrow's probe internals: this is the
check that the installed pyarrow still behaves that way). Fresh interpreters: the probe's
answer lasts for the process."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def test_without_the_skip_pyarrow_imports_pandas() -> None:
    """The cost being removed exists: a plain pa.array() imports pandas."""
    assert _run("""
        import sys, pyarrow as pa, pyarrow.compute as pc
        pc.equal(pa.array(["kept"]), "kept")
        print("pandas" in sys.modules)
    """) == "True"


def test_skip_keeps_pandas_out_and_conversions_working() -> None:
    assert _run("""
        import sys, pyarrow as pa, pyarrow.compute as pc
        from curator.pyarrow_pandas import skip_pandas_probe
        skip_pandas_probe()
        pc.equal(pa.array(["kept", "x"]), "kept")
        pa.table({"a": [1, 2]}).filter(pc.greater(pa.array([1, 2]), 1))
        before = "pandas" in sys.modules
        df = pa.table({"a": [1, 2]}).to_pandas()  # asks for pandas for real: imported now
        back = pa.Table.from_pandas(df)
        print(before, "pandas" in sys.modules, list(df["a"]), back.column("a").to_pylist())
    """) == "False True [1, 2] [1, 2]"


def test_worker_preload_loads_the_stages_without_pandas() -> None:
    assert _run("""
        import sys, pyarrow as pa
        import curator.worker_preload
        pa.array([1, 2, 3])
        print("curator.passes" in sys.modules, "pandas" in sys.modules)
    """) == "True False"


def test_skip_is_a_no_op_once_pandas_is_loaded() -> None:
    assert _run("""
        import sys, pandas, pyarrow as pa
        from curator.pyarrow_pandas import skip_pandas_probe
        skip_pandas_probe()
        arr = pa.array(pandas.Series([1, None], dtype="Int64"))
        print(arr.null_count, sys.modules["pandas"] is pandas)
    """) == "1 True"
