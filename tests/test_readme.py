"""The README's config example is a real, valid config: docs that cannot rot."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from backend.config import parse_config

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_config_example_is_valid() -> None:
    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README lost its config example"
    config = parse_config(tomllib.loads(blocks[0]), "README.md")
    assert config.portal.recipe == "laravel"
    assert [h.name for h in config.hosts] == ["web-1", "web-2", "web-3"]
    assert config.validation.api_probes and config.notify.channels
