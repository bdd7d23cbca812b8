"""The migration drill: on a populated database every app migrates to zero and forward again.

An upgrade that goes wrong is undone with `migrate <app> <earlier>`; that only works if every
migration can run backwards on real data. The drill runs in a manage.py subprocess on a
throw-away database (a fresh SQLite DATA_DIR, or a fresh PostgreSQL database in the
PostgreSQL pass), so the suite's own database is never touched, and it reads the migration
graph instead of naming migrations, so new ones are drilled as soon as they exist.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from config.tests.test_settings_env import run_manage

# Dependents first: chat needs models_registry and accounts, config needs models_registry.
APPS_IN_ORDER = ["chat", "config", "models_registry", "accounts"]

DRILL = r"""
import json
import sys

from django.core.management import call_command
from django.db import connection
from django.db.migrations.exceptions import IrreversibleError
from django.db.migrations.recorder import MigrationRecorder
from django.conf import settings
from django.test import Client, override_settings

APPS = __APPS__
API_KEY = "sk-drill-0123456789abcdef-d1d1"


def fingerprint():
    # Tables, columns and constraints as the database itself reports them.
    intro = connection.introspection
    with connection.cursor() as cursor:
        schema = {}
        for table in sorted(intro.table_names(cursor)):
            columns = [str(tuple(c)) for c in intro.get_table_description(cursor, table)]
            constraints = intro.get_constraints(cursor, table)
            schema[table] = {
                "columns": columns,
                "constraints": {k: json.dumps(v, sort_keys=True, default=str)
                                for k, v in constraints.items()},
            }
    return schema


def applied(app):
    return sorted(n for a, n in MigrationRecorder(connection).applied_migrations() if a == app)


def populate():
    from datetime import timedelta

    from django.utils import timezone

    from accounts import services as accounts
    from accounts.models import AuditEvent
    from chat.models import ChatSession, Message
    from config.models import SystemSetting
    from models_registry.models import ModelConfig
    from models_registry.services import model_config_save

    admin = accounts.user_signup(username="ada", password="a-long-drill-passphrase-1")
    user = accounts.user_signup(username="bea", password="a-long-drill-passphrase-2")
    accounts.user_set_approved(user=user, approved=True, actor=admin)
    system = model_config_save(
        model_config=ModelConfig(name="Sys", api_url="http://127.0.0.1:9/v1", model="m"),
        new_api_key=API_KEY, changed_fields=[], actor=admin,
    )
    ModelConfig(owner=user, name="Mine", api_url="https://93.184.216.34/v1", model="p").save()
    setting = SystemSetting.objects.get()
    setting.default_model = system
    setting.chat_retention_days = 30
    setting.save()
    for n in range(3):
        chat = ChatSession.objects.create(user=user, model_config=system, title=f"c{n}")
        Message.objects.bulk_create(
            Message(session=chat, role=role, content=f"{role} {n} " + "long text " * 300)
            for role in ("user", "assistant")
        )
    ChatSession.objects.filter(title="c0").update(updated_at=timezone.now() - timedelta(days=40))
    assert AuditEvent.objects.count() >= 4 and Message.objects.count() == 6


def works():
    from chat.models import ChatSession, Message
    from config.services import get_system_setting
    from models_registry.models import ModelConfig

    call_command("check", "--fail-level", "ERROR")  # includes the encryption-key checks
    populate()
    model = ModelConfig.objects.get(name="Sys")
    assert model.get_api_key() == API_KEY
    assert get_system_setting().default_model == model
    client = Client()
    assert client.login(username="bea", password="a-long-drill-passphrase-2")
    chat = ChatSession.objects.filter(user__username="bea").first()
    # Pages without collectstatic's manifest: that is the deploy's business, not the drill's.
    plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    with override_settings(STORAGES={**settings.STORAGES, "staticfiles": plain}):
        for url in ("/", f"/chats/{chat.pk}/", "/models/"):
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
        assert "long text" in client.get(f"/chats/{chat.pk}/").content.decode()
    assert Message.objects.filter(session=chat).count() == 2


report = {"steps": []}
populate()
before = fingerprint()
for app in APPS:
    migrations = applied(app)
    try:
        call_command("migrate", app, "zero", verbosity=0)
    except IrreversibleError as error:
        print(json.dumps({"irreversible": app, "error": str(error)}))
        sys.exit(3)
    report["steps"].append({"app": app, "unapplied": migrations, "left": applied(app)})
report["tables_at_zero"] = sorted(connection.introspection.table_names())
call_command("migrate", verbosity=0)
report["same_schema"] = fingerprint() == before
call_command("makemigrations", "--check", "--dry-run", verbosity=0)
works()
report["works"] = True
print(json.dumps(report))
"""


@pytest.fixture
def drill_database(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for a fresh database of the backend this pass of the suite runs on."""
    if connection.vendor != "postgresql":
        yield {"ALLOWED_HOSTS": "testserver"}
        return
    settings = connection.settings_dict
    name = f"parley_drill_{secrets.token_hex(4)}"
    with connection._nodb_cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    url = (
        f"postgres://{settings['USER']}:{settings['PASSWORD']}@{settings['HOST']}:"
        f"{settings['PORT']}/{name}"
    )
    try:
        yield {"ALLOWED_HOSTS": "testserver", "DATABASE_URL": url}
    finally:
        with connection._nodb_cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.slow
@pytest.mark.django_db
def test_every_migration_runs_backwards_on_a_populated_database(tmp_path, drill_database):
    migrate = run_manage(tmp_path, "migrate", "-v0", **drill_database)
    assert migrate.returncode == 0, migrate.stderr
    script = DRILL.replace("__APPS__", repr(APPS_IN_ORDER))
    drill = run_manage(tmp_path, "shell", "-c", script, **drill_database)
    assert drill.returncode == 0, drill.stdout + drill.stderr
    report = json.loads(drill.stdout.strip().splitlines()[-1])

    for step in report["steps"]:
        assert step["unapplied"], f"{step['app']} had no migrations to drill"
        assert step["left"] == [], step
    # Every table of our apps was gone at zero (Django's own apps stay).
    ours = ("accounts_", "chat_", "config_", "models_registry_", "django_admin_log")
    assert not [t for t in report["tables_at_zero"] if t.startswith(ours)]
    assert report["same_schema"], "forward again, the schema differs from the first migrate"
    assert report["works"]
