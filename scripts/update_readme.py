"""Regenerate README's config reference from the pydantic models."""

from __future__ import annotations

import re
from pathlib import Path

from curator.config import CurateConfig
from curator.config_reference import render_reference

START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def updated(readme: str) -> str:
    block = f"{START}\n{render_reference(CurateConfig)}{END}"
    return re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, readme, flags=re.S)


if __name__ == "__main__":
    path = Path(__file__).resolve().parents[1] / "README.md"
    path.write_text(updated(path.read_text()))
