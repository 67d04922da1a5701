"""Render the config models as a markdown reference (README, `curator config-reference`)."""

from __future__ import annotations

from pydantic import BaseModel


def _rows(
    model: type[BaseModel], prefix: str, defaults: BaseModel | None, skip: tuple[str, ...]
) -> list[tuple[str, str, str]]:
    """Rows of (dotted path, default, description); a nested model's defaults are read from the
    parent's default instance, which may differ from the nested model's own defaults."""
    rows = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        if path in skip:
            continue
        ann = field.annotation
        value = getattr(defaults, name) if defaults is not None else field.default
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            nested = value if isinstance(value, BaseModel) else None
            rows.extend(_rows(ann, path + ".", nested, skip))
            continue
        default = "required" if field.is_required() else repr(value)
        rows.append((path, default, field.description or ""))
    return rows


def render_reference(model: type[BaseModel], skip: tuple[str, ...] = ()) -> str:
    """Markdown table of every field of `model`; `skip`: dotted paths to leave out."""
    lines = ["| field | default | description |", "|---|---|---|"]
    for path, default, desc in _rows(model, "", None, skip):
        lines.append(f"| `{path}` | `{default}` | {desc} |")
    return "\n".join(lines) + "\n"
