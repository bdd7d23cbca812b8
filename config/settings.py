"""Parley settings: every value comes from the environment (or `.env`) with a safe default.

`make run` needs no configuration at all: data, the database and generated secrets live
in DATA_DIR. `.env.example` lists every variable; README has the table and the
production set-up that passes `manage.py check --deploy`.
"""

from __future__ import annotations

from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.management.utils import get_random_secret_key
from django.utils.translation import gettext_lazy as _

from config.secret_files import secret_from_env_or_file

BASE_DIR = Path(__file__).resolve().parent.parent
PARLEY_VERSION = "0.1.0"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = secret_from_env_or_file(
    env.str("SECRET_KEY", default=""),
    env.str("SECRET_KEY_FILE", default=""),
    DATA_DIR / "secret_key",
    get_random_secret_key,
)

# API keys of models are encrypted with their own keys, never derived from SECRET_KEY
# (models_registry/crypto.py): from the variable, a file (Docker secret), or generated
# into DATA_DIR/encryption_keys on the first migrate.
PARLEY_ENCRYPTION_KEYS = env.str("PARLEY_ENCRYPTION_KEYS", default="")
PARLEY_ENCRYPTION_KEYS_FILE = env.str("PARLEY_ENCRYPTION_KEYS_FILE", default="")

LOCAL_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=LOCAL_HOSTS)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "config.apps.ParleyAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "csp",
    "config.apps.ParleyConfig",
    "accounts",
    "models_registry",
    "chat",
]

MIDDLEWARE = [
    "config.services.SystemSettingPerRequestMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After LocaleMiddleware (cookie, then Accept-Language): a signed-in user's saved
    # language wins over both (docs/i18n.md).
    "accounts.middleware.UserLanguageMiddleware",
    "accounts.middleware.SingleUserMiddleware",
    "accounts.middleware.ApprovalRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.context_processors.site",
                "accounts.context_processors.theme",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------
# SQLite is tuned for a web server: WAL so readers never block the writer, IMMEDIATE
# transactions so two writers queue on the busy timeout instead of failing with
# "database is locked" on lock upgrade, FULL sync unless the operator trades the last
# transactions on power loss for speed (SQLITE_SYNCHRONOUS=NORMAL).
SQLITE_SYNCHRONOUS = env.str("SQLITE_SYNCHRONOUS", default="FULL").upper()
if SQLITE_SYNCHRONOUS not in {"FULL", "NORMAL"}:
    raise environ.ImproperlyConfigured("SQLITE_SYNCHRONOUS must be FULL or NORMAL")
SQLITE_PRAGMAS = {
    "journal_mode": "WAL",
    "synchronous": SQLITE_SYNCHRONOUS,
    "temp_store": "MEMORY",
    # negative = KiB: 8 MB of page cache per connection. One connection per gunicorn thread
    # (2 workers x 16 threads), and under WAL a cache is dropped after any other writer's
    # commit anyway, so a bigger cache buys little and could cost hundreds of MB.
    "cache_size": "-8000",
    "journal_size_limit": "67108864",  # truncate the WAL back to 64 MiB after checkpoints
    "foreign_keys": "ON",
}
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": env.int("SQLITE_BUSY_TIMEOUT", default=30),
    "init_command": "; ".join(f"PRAGMA {k}={v}" for k, v in SQLITE_PRAGMAS.items()),
}

DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        **SQLITE_OPTIONS,
        **DATABASES["default"].get("OPTIONS", {}),
    }
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache --------------------------------------------------------------------------
# Shared by every worker process on the machine (never per-process memory): log-in
# throttling, rate limits, Stop flags and the cached SystemSetting must agree across
# gunicorn workers. Redis (CACHE_URL=redis://...) when there is more than one machine.
CACHES = {
    "default": {
        **env.cache_url("CACHE_URL", default=f"filecache://{DATA_DIR / 'cache'}"),
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="parley"),
    }
}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.filebased.FileBasedCache":
    # The same files, culled expired-first (config/cache.py): Stop flags and lock-outs stay.
    CACHES["default"]["BACKEND"] = "config.cache.ParleyFileCache"

# --- Accounts -----------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "chat:home"
LOGOUT_REDIRECT_URL = "accounts:login"

PASSWORD_HASHERS = [
    # Argon2id at OWASP's recommended cost, one hash at a time per process (memory).
    "accounts.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

PARLEY_SINGLE_USER = env.bool("PARLEY_SINGLE_USER", default=False)
PARLEY_SINGLE_USER_NAME = env.str("PARLEY_SINGLE_USER_NAME", default="admin")
PARLEY_LOGIN_FAILURE_LIMIT = env.int("PARLEY_LOGIN_FAILURE_LIMIT", default=5)
PARLEY_LOGIN_LOCKOUT_SECONDS = env.int("PARLEY_LOGIN_LOCKOUT_SECONDS", default=900)

# Django's database sessions and ModelBackend, each loaded by one precompiled SELECT on
# every signed-in request (config/rows.py).
SESSION_ENGINE = "accounts.sessions"
AUTHENTICATION_BACKENDS = ["accounts.backends.UserBackend"]
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=60 * 60 * 24 * 14)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
CSRF_FAILURE_VIEW = "config.views.csrf_failure"

# --- Security -----------------------------------------------------------------------
# PARLEY_HTTPS=true is the one switch for a site served over TLS: secure cookies,
# redirect to https and HSTS. PARLEY_BEHIND_PROXY=true trusts X-Forwarded-Proto/-For
# from the reverse proxy in front of gunicorn (and only then).
PARLEY_HTTPS = env.bool("PARLEY_HTTPS", default=False)
PARLEY_BEHIND_PROXY = env.bool("PARLEY_BEHIND_PROXY", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=PARLEY_HTTPS)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=PARLEY_HTTPS)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PARLEY_HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if PARLEY_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
if PARLEY_BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Exception reports (admin e-mails, debug pages) hide any frame variable whose name
# suggests a credential, on top of Django's own rules.
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.reporting.CredentialHidingFilter"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- Internationalisation -----------------------------------------------------------
# A page's language: the signed-in user's choice (User.language), else the switcher's
# cookie, else the browser's Accept-Language, else LANGUAGE_CODE, which is also the
# language of manage.py output. The /v1 API always answers in English. docs/i18n.md.
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en").lower()
if LANGUAGE_CODE not in {code for code, _name in LANGUAGES}:
    raise environ.ImproperlyConfigured("LANGUAGE_CODE must be en or zh-hans")
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_AGE = 60 * 60 * 24 * 365
LANGUAGE_COOKIE_SAMESITE = "Lax"
LANGUAGE_COOKIE_SECURE = PARLEY_HTTPS
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files -------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage",
    },
}

# --- Health, alerts, e-mail ------------------------------------------------------------
# /healthz answers 503 below this much free disk in DATA_DIR; the status page and the
# admins' e-mail warn when it is low or when the newest backup is older than allowed.
PARLEY_MIN_FREE_DISK_MB = env.int("PARLEY_MIN_FREE_DISK_MB", default=256)
PARLEY_BACKUP_MAX_AGE_HOURS = env.int("PARLEY_BACKUP_MAX_AGE_HOURS", default=26)
PARLEY_SLOW_QUERY_MS = env.int("PARLEY_SLOW_QUERY_MS", default=200)
# Where the onboarding's "Add the demo model" points: `make demo` serves the mock model here.
PARLEY_DEMO_MODEL_URL = env.str("PARLEY_DEMO_MODEL_URL", default="http://127.0.0.1:9999/v1")
EMAIL_URL_CONFIGURED = bool(env.str("EMAIL_URL", default=""))
if EMAIL_URL_CONFIGURED:
    globals().update(env.email_url("EMAIL_URL"))  # EMAIL_BACKEND, EMAIL_HOST, ...
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="parley@localhost")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)

# --- Logging ------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
