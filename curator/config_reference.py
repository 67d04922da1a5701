"""Render the config models as a markdown reference (README, `curator config-reference`)."""

from __future__ import annotations

from pydantic import BaseModel


def _rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str]]:
    rows = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(_rows(ann, path + "."))
            continue
        default = "required" if field.is_required() else repr(field.default)
        rows.append((path, default, field.description or ""))
    return rows


def render_reference(model: type[BaseModel]) -> str:
    lines = ["| field | default | description |", "|---|---|---|"]
    for path, default, desc in _rows(model, ""):
        lines.append(f"| `{path}` | `{default}` | {desc} |")
    return "\n".join(lines) + "\n"
