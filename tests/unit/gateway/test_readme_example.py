"""The store.yaml example in README.md is a valid store config (the README stays true)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from gateway.config import StoreConfig

README = Path(__file__).resolve().parents[3] / "README.md"


def test_the_readme_store_example_loads(tmp_path: Path) -> None:
    block = re.search(r"### Store \(`store.yaml`\)\n\n```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block is not None, "README.md lost its store.yaml example"
    raw = yaml.safe_load(block.group(1))
    raw["outbox"]["path"] = str(tmp_path / "outbox.db")
    path = tmp_path / "store.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    config = StoreConfig.load(path)
    assert {bus.transport for bus in config.buses} == {"rtu", "tcp", "escpos", "cctalk"}
