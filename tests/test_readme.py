"""The README's promises that a test can hold it to: the two set-up commands come first, and the
configuration table lists exactly the settings lamina has."""

from __future__ import annotations

from pathlib import Path

from lamina.settings import SETTINGS

README = Path(__file__).resolve().parent.parent / "README.md"


def settings_table() -> str:
    rows = ["| flag | variable | default | meaning |", "|---|---|---|---|"]
    for setting in SETTINGS:
        rows.append(f"| `{setting.flag}` | `{setting.env_var}` | `{setting.default}` | "
                    f"{setting.help} |")
    return "\n".join(rows)


def test_readme_opens_with_the_two_commands() -> None:
    text = README.read_text()
    block = text.split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands == ["make serve", "make test"]
    assert text.index("make serve") < text.index("## ")


def test_configuration_table_matches_the_settings() -> None:
    text = README.read_text()
    table = text.split("<!-- settings-table:start -->\n", 1)[1].split(
        "\n<!-- settings-table:end -->", 1)[0]
    assert table == settings_table(), "regenerate with: python -c 'from tests.test_readme " \
        "import settings_table; print(settings_table())'"


def test_ci_runs_make_test() -> None:
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci
