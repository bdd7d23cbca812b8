from __future__ import annotations

import pytest
from django.db import OperationalError


@pytest.mark.django_db
def test_healthz_is_ok_when_the_database_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] == "ok"
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz_is_503_when_the_database_is_unreachable(client, monkeypatch):
    from django.db.backends.base.base import BaseDatabaseWrapper

    def refuse(self):
        raise OperationalError("unable to open database file")

    monkeypatch.setattr(BaseDatabaseWrapper, "cursor", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "error"
    assert response.json()["database"] == "unreachable"


@pytest.mark.django_db
def test_healthz_needs_no_login_and_refuses_post(client):
    assert client.get("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


@pytest.mark.slow
def test_healthz_is_503_against_a_database_server_that_is_down(tmp_path):
    """A real unreachable server (nothing listens on port 1), not a mock."""
    from config.tests.test_settings_env import run_manage

    probe = (
        "from django.test import Client; r = Client().get('/healthz'); "
        "print(r.status_code, r.json()['database'])"
    )
    result = run_manage(
        tmp_path,
        "shell",
        "-c",
        probe,
        DATABASE_URL="postgres://nobody@127.0.0.1:1/parley",
        ALLOWED_HOSTS="testserver",
    )
    assert result.stdout.split()[-2:] == ["503", "unreachable"], result.stderr
