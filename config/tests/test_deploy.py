"""`check --deploy` is clean with the production environment the README documents."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from config.tests.test_settings_env import run_manage

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_production_env() -> dict[str, str]:
    """The variables of the README's production block (```env fenced, under "Production")."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"### Production behind TLS.*?```env\n(.*?)```", text, re.S)
    assert block, "README must document the production environment in an ```env block"
    pairs = {}
    for line in block.group(1).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name] = value
    return pairs


@pytest.mark.slow
def test_deploy_check_is_clean_with_the_documented_production_env(tmp_path):
    env = documented_production_env()
    assert env["PARLEY_HTTPS"] == "true"
    env["SECRET_KEY"] = "x" * 10 + "-a-long-random-production-key-" + "y" * 30
    result = run_manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.slow
def test_deploy_check_is_clean_with_the_generated_secret_key(tmp_path):
    env = documented_production_env()
    env.pop("SECRET_KEY", None)
    result = run_manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **env)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_plain_http_defaults_are_reported_by_the_deploy_check(tmp_path):
    """The check is not vacuous: without the TLS switches it complains."""
    result = run_manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "SESSION_COOKIE_SECURE" in result.stderr + result.stdout
