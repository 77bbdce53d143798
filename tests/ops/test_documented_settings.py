"""Every environment variable the settings read is in the operator guide's reference."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READS = re.compile(
    r"""env_\w+\(\s*["']([A-Z][A-Z0-9_]+)["']"""
    r"""|os\.(?:environ(?:\.get)?|getenv)[(\[]\s*["']([A-Z][A-Z0-9_]+)"""
)


def _variables_read() -> set[str]:
    found = set()
    for module in (ROOT / "config" / "settings").glob("*.py"):
        if module.name == "test.py":
            continue  # the test profile's own knobs are not for operators
        for match in READS.finditer(module.read_text()):
            found.add(match.group(1) or match.group(2))
    return found


def test_every_environment_variable_of_the_settings_is_in_the_operator_guide():
    guide = (ROOT / "docs" / "operator-guide.md").read_text()
    reference = guide[guide.index("## Every environment variable") :]
    variables = _variables_read()
    assert len(variables) > 40  # the pattern still finds them
    missing = sorted(name for name in variables if f"`{name}`" not in reference)
    assert missing == [], f"add these to docs/operator-guide.md: {missing}"
