"""Password hashing: OWASP's Argon2id cost, one hash at a time, Django's hashes still valid."""

from __future__ import annotations

import threading
import time

from django.contrib.auth.hashers import Argon2PasswordHasher as DjangoArgon2PasswordHasher

from accounts.hashers import Argon2PasswordHasher
from config import settings as production_settings

PASSWORD = "correct horse battery staple"


def test_production_settings_hash_with_it_first():
    assert production_settings.PASSWORD_HASHERS[0] == "accounts.hashers.Argon2PasswordHasher"
    # One hasher per algorithm name: Django's own would shadow this one.
    assert "django.contrib.auth.hashers.Argon2PasswordHasher" not in (
        production_settings.PASSWORD_HASHERS
    )


def test_it_is_argon2id_at_owasp_cost():
    hasher = Argon2PasswordHasher()
    encoded = hasher.encode(PASSWORD, hasher.salt())
    assert encoded.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")
    assert hasher.verify(PASSWORD, encoded)
    assert not hasher.verify("wrong", encoded)
    assert not hasher.must_update(encoded)


def test_a_hash_made_with_djangos_parameters_verifies_and_is_upgraded():
    django_hasher = DjangoArgon2PasswordHasher()
    old = django_hasher.encode(PASSWORD, django_hasher.salt())
    hasher = Argon2PasswordHasher()
    assert hasher.verify(PASSWORD, old)
    assert hasher.must_update(old)  # re-hashed with these parameters at the next log-in


def test_one_hash_at_a_time_per_process(monkeypatch):
    hasher = Argon2PasswordHasher()
    running = most = 0
    lock = threading.Lock()
    real_encode = DjangoArgon2PasswordHasher.encode

    def slow_encode(self, password, salt):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return real_encode(self, password, salt)

    monkeypatch.setattr(DjangoArgon2PasswordHasher, "encode", slow_encode)
    threads = [
        threading.Thread(target=hasher.encode, args=(PASSWORD, hasher.salt())) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1
