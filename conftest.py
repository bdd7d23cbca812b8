"""The shared cast (alice is the ADMIN, bob and carol are USERs) and the mock model server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from django.utils import translation

from accounts.models import Role, User
from models_registry.mock_llm import MockLLMServer, make_server

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The database rolls back after each test; the shared cache must be emptied too."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _default_language():
    """A request in another language leaves it active in the thread: start each test afresh."""
    yield
    translation.activate(settings.LANGUAGE_CODE)


def _make_user(username: str, role: str = Role.USER, **extra) -> User:
    return User.objects.create_user(
        username=username, email=f"{username}@example.com", password=PASSWORD, role=role, **extra
    )


@pytest.fixture
def alice(db) -> User:
    return _make_user("alice", Role.ADMIN)


@pytest.fixture
def bob(db) -> User:
    return _make_user("bob")


@pytest.fixture
def carol(db) -> User:
    return _make_user("carol")


@pytest.fixture
def make_user(db):
    return _make_user


def _client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice_client(alice) -> Client:
    return _client_for(alice)


@pytest.fixture
def bob_client(bob) -> Client:
    return _client_for(bob)


def every_admin_url(objects: dict) -> list[str]:
    """Every page the admin serves; per-object pages use the pk given for their model."""
    from django.contrib import admin
    from django.urls import reverse

    urls = [
        reverse("admin:index"),
        reverse("admin:password_change"),
        reverse("admin:password_change_done"),
        reverse("admin:jsi18n"),
        reverse("admin:autocomplete"),
    ]
    for model in admin.site._registry:
        app_label, model_name = model._meta.app_label, model._meta.model_name
        prefix = f"admin:{app_label}_{model_name}"
        urls += [
            reverse("admin:app_list", args=[app_label]),
            reverse(f"{prefix}_changelist"),
            reverse(f"{prefix}_add"),
        ]
        pk = objects.get(model, 1)
        urls += [reverse(f"{prefix}_{view}", args=[pk]) for view in ("change", "delete", "history")]
    if User in objects:
        urls.append(reverse("admin:auth_user_password_change", args=[objects[User]]))
    return sorted(set(urls))


@pytest.fixture
def start_mock_llm() -> Iterator[Callable[..., MockLLMServer]]:
    """Start servers with options (``delay_ms``, ``tokens``); every one is stopped after."""
    servers: list[MockLLMServer] = []

    def start(**options) -> MockLLMServer:
        server = make_server("127.0.0.1", 0, **options)
        server.serve_in_thread()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def mock_llm(start_mock_llm) -> MockLLMServer:
    return start_mock_llm()


@pytest.fixture
def fresh_keyring(settings, tmp_path, db):
    """A managed API-key file of this test's own, with the canary re-encrypted for it."""
    from config.models import SystemSetting
    from models_registry import crypto, key_management

    settings.DATA_DIR = tmp_path
    settings.PARLEY_ENCRYPTION_KEYS = ""
    settings.PARLEY_ENCRYPTION_KEYS_FILE = ""
    assert crypto.create_key_file()
    key_management.ensure_encryption_ready()
    SystemSetting.objects.update(encryption_canary=crypto.encrypt(key_management.CANARY_PLAINTEXT))
    return tmp_path / crypto.KEY_FILE_NAME
