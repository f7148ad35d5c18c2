"""Seed file validation: clear errors naming the file, the user and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from central.errors import SeedError
from central.seed import read_seed


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "seed.yaml"
    path.write_text(text)
    return path


def test_reads_users_and_technicians(tmp_path: Path) -> None:
    seed = read_seed(write(tmp_path, """
users:
  - {username: tina, display_name: Tina, role: technician, password: pw-tina-123, skills: [refrigeration], region: n}
  - {username: dora, display_name: Dora, role: dispatcher, password: pw-dora-123}
"""))
    assert [u.username for u in seed.users] == ["tina", "dora"]
    assert seed.users[0].skills == ["refrigeration"]
    assert "pw-tina-123" not in repr(seed)  # passwords are secrets, never printed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("users:\n  - {username: dora, display_name: D, role: dispatcher}", "user dora: give exactly one"),
        ("users:\n  - {username: dora, display_name: D, role: dispatcher, password: x, skills: [a]}",
         "belong to technicians"),
        ("users:\n  - {username: x, display_name: X, role: wizard, password: p}", "user x.role"),
        ("users:\n  - {username: x, display_name: X, role: admin, password_hash: plain}", "not an argon2id"),
        ("users:\n  - {username: x, display_name: X, role: admin, password: p}\n"
         "  - {username: x, display_name: Y, role: admin, password: q}", "duplicate usernames"),
        ("users: [", "not YAML"),
    ],
)
def test_bad_seed_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SeedError, match=message) as caught:
        read_seed(path)
    assert str(path) in caught.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SeedError, match="cannot read"):
        read_seed(tmp_path / "nope.yaml")


def test_a_technicians_section_implies_the_role(tmp_path: Path) -> None:
    seed = read_seed(write(tmp_path, """
users:
  - {username: dana, display_name: Dana, role: dispatcher, password: pw-dana-123}
technicians:
  - {username: ana, display_name: Ana Ruiz, password: pw-ana-1234, skills: [refrigeration], region: north}
"""))
    assert [(u.username, u.role.value) for u in seed.everyone] == [("dana", "dispatcher"), ("ana", "technician")]


def test_a_technicians_entry_cannot_have_another_role(tmp_path: Path) -> None:
    path = write(tmp_path, "technicians:\n  - {username: ana, display_name: A, role: admin, password: p}")
    with pytest.raises(SeedError, match="user ana.role"):
        read_seed(path)
