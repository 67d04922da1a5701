"""Regenerate README's config reference from the pydantic models."""

from __future__ import annotations

import re
from pathlib import Path

from curator.config import CurateConfig
from curator.config_reference import render_reference
from curator.loop.config import LoopConfig

BLOCKS = {"config-reference": CurateConfig, "loop-reference": LoopConfig}


def updated(readme: str) -> str:
    for name, model in BLOCKS.items():
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        skip = ("agent", "ray") if model is LoopConfig else ()
        block = f"{start}\n{render_reference(model, skip)}{end}"
        readme = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _, b=block: b, readme,
                        flags=re.S)
    return readme


if __name__ == "__main__":
    path = Path(__file__).resolve().parents[1] / "README.md"
    path.write_text(updated(path.read_text()))
