"""What the local worker pool's fork server imports before it forks any worker (curator.fanout).

Every worker then starts with curator's stages loaded, for the cost of one import in one
process. pyarrow's pandas probe is answered here once (curator.pyarrow_pandas), so no worker
imports pandas on its first `pa.array()` (~0.15 CPU-s and ~40 MB each).
"""

from __future__ import annotations

import curator.passes  # noqa: F401  - pass 1 and pass 2 workers, and the stages they run
import curator.stages.dedup  # noqa: F401  - the dedup tasks
from curator.pyarrow_pandas import skip_pandas_probe

skip_pandas_probe()
