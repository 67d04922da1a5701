"""Presets (`curator curate --preset`): each loads and validates, layers under --config and
--set, and keeps the text it is for: a hard-wrapped novel whole (books), a Python file as
written (code)."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from curator.cli import app, build_curate_config
from curator.config import ConfigError, CurateConfig
from curator.pipeline import build_pass1_steps, run_chain
from curator.presets import PRESETS, load_preset, preset_text
from curator.schema import KEPT
from curator.schema import doc_table as docs

REPO = Path(__file__).resolve().parents[1]

# Dense word slots: nearly every 5-word window holds three or more drawn words, so word
# 5-grams repeat about as rarely as in a real novel (5% of characters here, 1-10% in 46
# public-domain books).
_NAMES = (
    "Margaret Thomas Eliza Robert Agnes Walter Harriet Edmund Lucy Frederick Clara Arthur "
    "Miriam Stephen Ellen Hugh Dorothea Philip Rosamond George Catherine Henry Maria Oliver"
).split()
_VERBS = (
    "considered remembered doubted described admired postponed repeated forgave questioned "
    "accepted mentioned answered watched refused examined explained carried folded opened "
    "mended counted praised guarded sold borrowed returned hid noticed weighed pictured "
    "misjudged defended measured copied signed sealed lost found owed kept studied"
).split()
_ADJ = (
    "quiet grey narrow cold bright heavy patient restless faded careful distant sudden "
    "familiar anxious gentle weary stubborn plain silent honest crooked generous idle "
    "solemn cheerful modest damp hollow proud uneasy tender bitter vague sober ancient "
    "humble eager clumsy polite shabby lonely fragile curious sullen hasty mild ragged "
    "stern awkward"
).split()
_NOUNS = (
    "letter evening window promise silence journey answer carriage question garden morning "
    "lamp bargain door fortune rumour visitor sermon debt harvest cottage ledger bonnet "
    "orchard parcel shilling portrait staircase quarrel apology kettle hedge doorstep "
    "meadow inheritance chapel errand pony lantern wager ribbon cellar bridge almanac "
    "shutter apron curate mortgage fever wedding quill basket chimney sketch brook "
    "tenant sermon pew gate"
).split()
_PREPS = "beside behind beneath near across past toward against without inside".split()
_DETS = "the the a his her their that every".split()
_JOINS = "and but while because although until before after since when".split()


def _clause(rng: random.Random) -> str:
    def phrase() -> str:
        return f"{rng.choice(_DETS)} {rng.choice(_ADJ)} {rng.choice(_NOUNS)}"

    clause = f"{rng.choice(_NAMES)} {rng.choice(_VERBS)} {phrase()}"
    return clause + (f" {rng.choice(_PREPS)} {phrase()}" if rng.random() < 0.5 else "")


def _sentence(rng: random.Random) -> str:
    body = f" {rng.choice(_JOINS)} ".join(_clause(rng) for _ in range(rng.randint(1, 3)))
    if rng.random() < 0.2:
        return f'"{body}," said {rng.choice(_NAMES)}.'
    return body + "."


def hard_wrapped_novel(n_words: int = 110_000, seed: int = 0) -> str:
    """A novel-length plain-text book as Gutenberg editions are: chapters, paragraphs of
    several sentences hard-wrapped at 70 columns, a blank line between paragraphs. Generated
    (not repeated) so the Gopher repetition rules see what a real novel gives them."""
    rng = random.Random(seed)
    blocks, words, chapter = [], 0, 0
    while words < n_words:
        if words >= chapter * 4000:
            chapter += 1
            blocks.append(f"CHAPTER {chapter}")
        para = " ".join(_sentence(rng) for _ in range(rng.randint(3, 7)))
        words += len(para.split())
        blocks.append(textwrap.fill(para, width=70))
    return "\n\n".join(blocks)


PYTHON_FILE = '''"""Read a settings file and merge it over the defaults."""

from __future__ import annotations

import json
from pathlib import Path

DEFAULTS = {"retries": 3, "timeout": 10.0, "paths": []}


class Settings:
    """Settings with defaults; unknown keys are an error."""

    def __init__(self, values: dict | None = None) -> None:
        merged = dict(DEFAULTS)
        for key, value in (values or {}).items():
            if key not in DEFAULTS:
                raise KeyError(f"unknown setting {key!r}")
            merged[key] = value
        self.values = merged

    @classmethod
    def load(cls, path: Path) -> Settings:
        # An empty file means "all defaults", not an error.
        text = path.read_text().strip()
        return cls(json.loads(text) if text else None)

    def timeout_for(self, attempt: int) -> float:
        """Back off linearly: the n-th attempt waits n times the base timeout."""
        return self.values["timeout"] * max(1, attempt)


def main(argv: list[str]) -> int:
    settings = Settings.load(Path(argv[1]))
    for attempt in range(settings.values["retries"]):
        print(attempt, settings.timeout_for(attempt))
    return 0
'''


def preset_config(name: str, *overrides: str) -> CurateConfig:
    return build_curate_config(["in.jsonl"], "runs/x", None, list(overrides), False, name)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_and_validates(name: str) -> None:
    assert "inputs" not in load_preset(name) and "output" not in load_preset(name)
    cfg = preset_config(name)
    assert cfg.inputs[0].path == "in.jsonl" and cfg.output == "runs/x"


@pytest.mark.parametrize("name", PRESETS)
def test_configs_folder_holds_the_same_preset(name: str) -> None:
    # one source of truth: configs/NAME.yaml is the package's preset, for --config users
    assert (REPO / "configs" / f"{name}.yaml").read_text() == preset_text(name)


def test_web_preset_is_the_defaults() -> None:
    assert preset_config("web") == build_curate_config(["in.jsonl"], "runs/x", None, [], False)


def test_layering_preset_then_config_file_then_set(tmp_path: Path) -> None:
    config = tmp_path / "job.yaml"
    job = {"inputs": [{"path": "b.jsonl"}], "output": "runs/f"}
    job["quality"] = {"c4": {"enabled": True}}
    config.write_text(yaml.safe_dump(job))
    cfg = build_curate_config(None, None, config, ["quality.c4.min_sentences=2"], False, "books")
    assert cfg.quality.c4.enabled and cfg.quality.c4.min_sentences == 2  # file, then --set
    assert cfg.quality.gopher_quality.max_words == 4_000_000  # preset field the file left alone
    assert not cfg.quality.fineweb.enabled
    assert cfg.output == "runs/f" and cfg.inputs[0].path == "b.jsonl"


def test_unknown_preset_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="web, books, code"):
        preset_config("novels")
    result = CliRunner().invoke(app, ["curate", "--preset", "novels", "-i", "x", "-o", "y"])
    assert result.exit_code == 2 and "web, books, code" in result.output


def test_books_preset_keeps_a_hard_wrapped_novel_whole() -> None:
    novel = hard_wrapped_novel()
    assert len(novel.split()) > 100_000  # longer than web's Gopher max_words
    out = run_chain(build_pass1_steps(preset_config("books")), docs([novel]))
    assert out.column("decision")[0].as_py() == KEPT, out.column("reason")[0].as_py()
    assert out.column("text")[0].as_py() == novel
    assert out.column("n_chars")[0].as_py() == len(novel)


def test_web_rules_do_not_keep_the_novel() -> None:
    novel = hard_wrapped_novel()
    web = run_chain(build_pass1_steps(preset_config("web")), docs([novel]))
    assert web.column("reason")[0].as_py() == "too_many_words"
    # without the length cap, C4's line rules would gut it: dropped, not kept as fragments
    uncapped = preset_config("web", "quality.gopher_quality.max_words=1000000")
    out = run_chain(build_pass1_steps(uncapped), docs([novel]))
    assert out.column("reason")[0].as_py() == "too_many_lines_removed"


def test_code_preset_keeps_a_python_file_as_written() -> None:
    out = run_chain(build_pass1_steps(preset_config("code")), docs([PYTHON_FILE]))
    assert out.column("decision")[0].as_py() == KEPT, out.column("reason")[0].as_py()
    assert out.column("text")[0].as_py() == PYTHON_FILE  # indentation and blank lines intact
    web = run_chain(build_pass1_steps(preset_config("web")), docs([PYTHON_FILE]))
    assert web.column("decision")[0].as_py() != KEPT
