"""The test PostgreSQL server's own rules: CI can never pass by skipping, and only a full server install counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.postgres import REQUIRE_ENV, SERVER_TOOLS, _unavailable, find_bindir


def test_a_missing_server_skips_unless_ci_requires_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no server"):
        _unavailable("no server")
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"no server, and {REQUIRE_ENV}=1 requires PostgreSQL"):
        _unavailable("no server")


def test_a_client_only_install_is_not_a_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for tool, text in (("pg_ctl", ""), ("pg_config", f"echo {tmp_path}")):  # pg_config of libpq-dev, say
        (tmp_path / tool).write_text(f"#!/bin/sh\n{text}\n")
        (tmp_path / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    found = find_bindir()
    assert found != tmp_path
    assert found is None or all((found / tool).is_file() for tool in SERVER_TOOLS)
