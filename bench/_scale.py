"""Plumbing for bench/scale_out.py: two real Parleys on one PostgreSQL + one Redis.

`cluster()` creates a throw-away PostgreSQL database (`parley_bench_scale_<hex>`) on the
`postgres` maintenance database, empties one Redis database number, starts the mock
upstreams, migrates once and starts two Parleys (`bench/_live.py`'s `Parley`:
`scripts/entrypoint.sh` under gunicorn, each its own DATA_DIR, the same DATABASE_URL,
CACHE_URL, SECRET_KEY and encryption keys) on two free ports, and creates the users and
the system models. On the way out, failed or not, it stops everything, drops the database
and empties the Redis database again.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from _live import Parley, Upstream, static_root
from cryptography.fernet import Fernet
from psycopg import sql
from psycopg.rows import dict_row

from chat.fields import unpack_text

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_HOST = "127.0.0.1:6379"

SET_RATE_LIMIT = """
import json
from config.services import get_system_setting, system_setting_update
setting = get_system_setting()
setting.messages_per_minute = {limit}
system_setting_update(setting=setting, changed_fields=["messages_per_minute"], actor=None)
print(json.dumps(setting.messages_per_minute))
"""


def unreachable(postgres_url: str, redis_url: str) -> str | None:
    """Why PostgreSQL or Redis cannot be used (None when both answer within 3 s)."""
    try:
        with psycopg.connect(postgres_url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as error:  # any failure means "not here"
        return f"PostgreSQL at {_shown(postgres_url)}: {type(error).__name__}"
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3).ping()
    except Exception as error:
        return f"Redis at {redis_url}: {type(error).__name__}"
    return None


def _shown(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}:{parts.port or ''}{parts.path}"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@dataclass
class Cluster:
    database: str
    database_url: str
    redis_url: str
    base: Path
    instances: list[Parley]
    upstreams: dict[str, Upstream]
    models: dict[str, int] = field(default_factory=dict)

    @property
    def a(self) -> Parley:
        return self.instances[0]

    @property
    def b(self) -> Parley:
        return self.instances[1]

    def set_rate_limit(self, per_minute: int) -> None:
        code = SET_RATE_LIMIT.format(limit=int(per_minute))
        self.a.manage("shell", "--no-imports", "-c", code)

    def query(self, statement: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        """Read PostgreSQL directly, as any other process would; text columns decoded."""
        with psycopg.connect(self.database_url, row_factory=dict_row) as conn:
            rows = conn.execute(statement, params).fetchall()
        for row in rows:
            for name in ("content", "reasoning"):
                if row.get(name) is not None:
                    row[name] = unpack_text(row[name])
        return rows

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(
            f"--- {name} ({server.log_path})\n{server.log_tail(lines)}"
            for name, server in zip("AB", self.instances, strict=True)
        )


def server_versions(postgres_url: str, redis_url: str) -> str:
    with psycopg.connect(postgres_url, connect_timeout=3) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0].split()[0]
    info = redis.Redis.from_url(redis_url, socket_connect_timeout=3).info("server")
    return f"PostgreSQL {pg}, Redis {info.get('redis_version', '?')}"


def _in_parallel(*jobs: Any) -> list[Any]:
    """Run the callables in threads; their results in order, or the first exception."""
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(index: int, job: Any) -> None:
        try:
            results[index] = job()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


@contextmanager
def cluster(
    *,
    usernames: list[str],
    postgres_url: str = DEFAULT_POSTGRES_URL,
    redis_db: int = 13,
    load_delay_ms: tuple[int, int] = (20, 40),
    slow_tokens: int = 300,
    slow_delay_ms: int = 40,
    workers: int = 2,
    threads: int = 8,
) -> Iterator[Cluster]:
    """Two Parleys sharing a fresh PostgreSQL database and Redis database ``redis_db``.

    Models: "load" (the mock echoing the user's words, ``load_delay_ms`` per token drawn
    per answer) and "slow" (``slow_tokens`` tokens, ``slow_delay_ms`` each). Every user's
    password is `_live.PASSWORD`; the rate limit starts off (0).
    """
    database = f"parley_bench_scale_{secrets.token_hex(4)}"
    database_url = _with_database(postgres_url, database)
    redis_url = f"redis://{DEFAULT_REDIS_HOST}/{redis_db}"
    cache = redis.Redis.from_url(redis_url, socket_connect_timeout=3)
    base = Path(tempfile.mkdtemp(prefix="parley-bench-scale-"))
    upstreams: dict[str, Upstream] = {}
    instances: list[Parley] = []
    created = False
    keep_logs = True
    try:
        cache.flushdb()
        with psycopg.connect(postgres_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        created = True

        upstreams["load"] = Upstream(delay_ms=load_delay_ms)  # echoes the prompt
        upstreams["slow"] = Upstream(
            delay_ms=(slow_delay_ms, slow_delay_ms), tokens=(slow_tokens, slow_tokens)
        )
        shared = {
            "DATABASE_URL": database_url,
            "CACHE_URL": redis_url,
            "SECRET_KEY": secrets.token_urlsafe(50),
            "PARLEY_ENCRYPTION_KEYS": Fernet.generate_key().decode("ascii"),
            "LOG_LEVEL": "WARNING",
            # Migrated once below, before either starts; no pg_dump needed.
            "PARLEY_BACKUP_BEFORE_MIGRATE": "false",
        }
        for name in ("a", "b"):
            server = Parley(workers=workers, threads=threads, base=base / name, keep_base=True)
            server.env.update(shared)  # its own DATA_DIR and port, the rest shared
            instances.append(server)

        instances[0].manage("migrate", "--noinput", timeout=180)
        found = _in_parallel(
            instances[0].start,
            instances[1].start,
            lambda: instances[0].setup(
                users=usernames,
                models={name: upstream.base_url for name, upstream in upstreams.items()},
                messages_per_minute=0,  # the load sends more than a person would
            ),
        )[2]
        yield Cluster(
            database=database,
            database_url=database_url,
            redis_url=redis_url,
            base=base,
            instances=instances,
            upstreams=upstreams,
            models=found["models"],
        )
        keep_logs = False
    finally:
        for server in instances:
            with suppress(Exception):
                server.stop()
        for upstream in upstreams.values():
            with suppress(Exception):
                upstream.stop()
        if created:
            with psycopg.connect(postgres_url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(database)
                    )
                )
        with suppress(Exception):
            cache.flushdb()
        if instances:  # `_live` collected the static files into a directory of its own
            shutil.rmtree(static_root().parent, ignore_errors=True)
        if keep_logs:
            print(f"(server logs kept in {base})")
        else:
            shutil.rmtree(base, ignore_errors=True)
