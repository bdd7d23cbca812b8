"""Shared plumbing for the benchmark scripts in bench/ (run by `make bench`).

Every script: `python bench/NAME.py [--smoke] [--write]`. `--smoke` runs tiny sizes with
no timing claims (what `make test` runs, so the scripts cannot rot); `--write` appends
the printed table, with machine, versions and date, to docs/performance.md. Absolute
times drift on a shared machine, so every measure is compared with a naive alternative
in the same run and quoted as medians and ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "performance.md"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def parse_args(description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, no timing claims")
    parser.add_argument(
        "--write", action="store_true", help="append results to docs/performance.md"
    )
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def setup_django(data_dir: Path | None = None, **env: str) -> Path:
    """Production settings in a throw-away DATA_DIR (SQLite unless DATABASE_URL is given)."""
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="parley-bench-"))
    os.environ["DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{data_dir / 'db.sqlite3'}")
    os.environ.setdefault("CACHE_URL", f"filecache://{data_dir / 'cache'}")
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return data_dir


def timed(fn: Callable[[], object], repeat: int = 21, warmup: int = 3) -> list[float]:
    """Wall-clock seconds of `repeat` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def median_ms(samples: Sequence[float]) -> float:
    return statistics.median(samples) * 1000


def percentile(samples: Sequence[float], p: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def machine() -> str:
    try:
        import django

        django_version = django.get_version()
    except ImportError:
        django_version = "?"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Django {django_version}, "
        f"SQLite {sqlite3.sqlite_version}"
    )


def report(title: str, body: str, *, write: bool, notes: str = "") -> None:
    """Print the result; with --write append it to docs/performance.md."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = f"\n### {title} ({stamp})\n\n{machine()}\n\n{body}\n"
    if notes:
        text += f"\n{notes}\n"
    print(text)
    if write:
        with DOCS.open("a", encoding="utf-8") as handle:
            handle.write(text)


def verdict(ok: bool, target: str) -> str:
    return f"{'meets' if ok else 'MISSES'} target ({target})"
