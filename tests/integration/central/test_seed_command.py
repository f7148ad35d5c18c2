"""`storeguard central seed FILE`: migrates, loads users and stores, is idempotent, and says what went wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from central.auth.models import Role, User
from central.db import Database
from central.stores.models import Store

SEED = """\
stores:
  - {id: store-7, name: Harbour Road, region: north}
users:
  - {username: sunny, display_name: Sunny, role: supervisor, region: north, password: a-long-passphrase-1}
  - {username: stan, display_name: Stan, role: store_staff, store: store-7, password: a-long-passphrase-2}
technicians:
  - {username: tina, display_name: Tina, password: a-long-passphrase-3, skills: [refrigeration], region: north}
"""


def _seed(database_url: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "storeguard", "central", "seed", str(path),
                           "--database-url", database_url], capture_output=True, text=True, timeout=120, check=False)


def test_the_seed_command_creates_then_updates(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text(SEED)
    first = _seed(database_url, path)
    assert first.returncode == 0, first.stderr
    assert "3 users created, 0 updated" in first.stdout
    again = _seed(database_url, path)
    assert again.returncode == 0 and "0 users created, 3 updated" in again.stdout
    database = Database(database_url)
    try:
        with database.session() as session:
            users = {u.username: u for u in session.scalars(select(User))}
            store = session.get_one(Store, "store-7")
    finally:
        database.dispose()
    assert users["sunny"].role is Role.SUPERVISOR and users["sunny"].region == "north"
    assert users["stan"].store_id == "store-7" and users["tina"].region == "north"
    assert users["tina"].password_hash.startswith("$argon2id$")
    assert (store.name, store.region) == ("Harbour Road", "north")


def test_a_bad_seed_file_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text("users:\n  - {username: x, display_name: X, role: admin, store: store-1, password: p}\n")
    result = _seed(f"sqlite:///{tmp_path / 'c.db'}", path)
    assert result.returncode == 2
    assert "user x" in result.stderr and "'store' belongs to store_staff only" in result.stderr
