"""The Dockerfile stays a thin shell around scripts the suite runs (no Docker engine here)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from config.tests.test_settings_env import run_manage

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def instructions(keyword: str) -> list[str]:
    joined = DOCKERFILE.replace("\\\n", " ")
    return re.findall(rf"^{keyword}\s+(.*)$", joined, re.M)


def test_dockerfile_is_multi_stage_on_python_311():
    stages = instructions("FROM")
    assert len(stages) >= 2
    assert all(stage.startswith("python:3.11") for stage in stages)


def test_dockerfile_runs_as_a_non_root_user_with_a_data_volume():
    users = instructions("USER")
    assert users
    assert users[-1] not in {"root", "0"}
    assert any("/data" in volume for volume in instructions("VOLUME"))
    assert "DATA_DIR=/data" in DOCKERFILE


def test_dockerfile_health_check_and_entrypoint_are_the_tested_scripts():
    (healthcheck,) = instructions("HEALTHCHECK")
    assert "scripts/healthcheck.py" in healthcheck
    (entrypoint,) = instructions("ENTRYPOINT")
    assert "scripts/entrypoint.sh" in entrypoint
    for script in ("scripts/entrypoint.sh", "scripts/healthcheck.py"):
        assert os.access(ROOT / script, os.X_OK), script


@pytest.mark.slow
def test_the_build_time_collectstatic_step_works(tmp_path):
    """The same command and variables as the Dockerfile's RUN step, outside Docker."""
    (run_step,) = [run for run in instructions("RUN") if "collectstatic" in run]
    assert "SECRET_KEY=" in run_step
    static_root = tmp_path / "static"
    result = run_manage(
        tmp_path / "data",
        "collectstatic",
        "--noinput",
        "-v",
        "0",
        SECRET_KEY="collectstatic-only",
        STATIC_ROOT=str(static_root),
    )
    assert result.returncode == 0, result.stderr
    assert (static_root / "staticfiles.json").exists()
    assert list(static_root.glob("css/parley.*.css"))


def test_compose_offers_sqlite_by_default_and_a_scale_profile():
    compose = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert "parley-data:/data" in compose
    assert "profiles: [scale]" in compose
    assert "postgres://" in compose
    assert "redis://" in compose
