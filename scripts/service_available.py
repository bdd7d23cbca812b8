#!/usr/bin/env python3
"""Exit 0 if the PostgreSQL or Redis server at the URL answers within 3 s, else 1."""

import sys
from urllib.parse import urlsplit


def main(url: str) -> int:
    scheme = urlsplit(url).scheme
    try:
        if scheme.startswith("postgres"):
            import psycopg

            with psycopg.connect(
                url.replace("postgresql://", "postgres://"), connect_timeout=3
            ) as conn:
                conn.execute("SELECT 1")
        elif scheme.startswith("redis"):
            import redis

            redis.Redis.from_url(url, socket_connect_timeout=3).ping()
        else:
            print(f"unknown service URL scheme: {scheme}", file=sys.stderr)
            return 2
    except Exception:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
