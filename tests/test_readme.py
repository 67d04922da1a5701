from pathlib import Path

from scripts.update_readme import updated

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_opens_with_exactly_two_setup_commands():
    text = README.read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert [c.split()[0] for c in commands] == ["scripts/demo.sh", "scripts/test.sh"]


def test_readme_config_reference_is_current():
    text = README.read_text()
    assert updated(text) == text, "run: .venv/bin/python scripts/update_readme.py"
