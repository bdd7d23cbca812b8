"""Settings for the test suite: production settings in a throw-away DATA_DIR.

The suite never reads the developer's `.env` database or cache: it uses
PARLEY_TEST_DATABASE_URL / PARLEY_TEST_CACHE_URL when given (the PostgreSQL + Redis
pass of `make test`), else SQLite and the file cache in a temporary DATA_DIR.
"""

import atexit
import os
import shutil
import tempfile

_test_data_dir = tempfile.mkdtemp(prefix="parley-test-")
atexit.register(shutil.rmtree, _test_data_dir, ignore_errors=True)
os.environ["DATA_DIR"] = _test_data_dir
os.environ["DATABASE_URL"] = os.environ.get(
    "PARLEY_TEST_DATABASE_URL", f"sqlite:///{_test_data_dir}/db.sqlite3"
)
os.environ["CACHE_URL"] = os.environ.get(
    "PARLEY_TEST_CACHE_URL", f"filecache://{_test_data_dir}/cache"
)
for _name in (
    "SECRET_KEY",
    "SECRET_KEY_FILE",
    "PARLEY_SINGLE_USER",
    "ALLOWED_HOSTS",
    "LANGUAGE_CODE",
):
    os.environ.pop(_name, None)

from django.contrib.auth.hashers import Argon2PasswordHasher  # noqa: E402

from config.settings import *  # noqa: E402,F403
from config.settings import DATA_DIR, DATABASES  # noqa: E402


class FastArgon2PasswordHasher(Argon2PasswordHasher):
    """Real Argon2id with tiny costs, so creating a user in a fixture takes microseconds."""

    time_cost = 1
    memory_cost = 64
    parallelism = 1


PASSWORD_HASHERS = ["config.test_settings.FastArgon2PasswordHasher"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A real file (not :memory:) so WAL and the other PRAGMAs are what production runs.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test_db.sqlite3")}

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# whitenoise looks for STATIC_ROOT at start-up; tests serve from the finders instead.
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
