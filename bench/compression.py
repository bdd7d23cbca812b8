"""Which codec stores chat messages best: zlib levels 1/6/9 against zstd levels 1/3/9.

Every message is compressed on its own, as ``chat.fields.CompressedTextField`` stores
it, and only messages longer than the threshold are compressed, each only when that
makes it smaller (a 1-byte header either way). Prints a markdown table; ``--write``
appends it, dated, to ``docs/performance.md``. zstd rows appear when the optional
``zstandard`` package is importable (it is not a Parley dependency).

Run from the repository root: ``python bench/compression.py [--smoke] [--write]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from corpus import DEFAULT_SIZE, SEED, Sample, build_corpus

try:
    import zstandard
except ImportError:  # optional: measured when installed, never required
    zstandard = None

DOCS = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
THRESHOLD = 1024  # SystemSetting.compression_threshold_bytes' default
HEADER = 1  # the stored type byte


@dataclass(frozen=True)
class Codec:
    name: str
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]


@dataclass(frozen=True)
class Result:
    codec: str
    eligible_ratio: float  # stored / UTF-8 bytes over messages above the threshold
    corpus_ratio: float  # stored / UTF-8 bytes over the whole corpus
    median_saving: float  # median per-message saving among messages above the threshold
    compress_mbs: float
    decompress_mbs: float
    by_kind: dict[str, float]  # stored / UTF-8 bytes per message kind (above the threshold)


def codecs(dictionary_corpus: list[bytes]) -> list[Codec]:
    found = [
        Codec(
            f"zlib-{level}",
            lambda data, level=level: zlib.compress(data, level),
            zlib.decompress,
        )
        for level in (1, 6, 9)
    ]
    if zstandard is None:
        return found
    for level in (1, 3, 9):
        compressor = zstandard.ZstdCompressor(level=level)
        found.append(
            Codec(f"zstd-{level}", compressor.compress, zstandard.ZstdDecompressor().decompress)
        )
    # A dictionary trained on another sample of the same generator: the best case for a
    # dictionary, which would have to be stored and versioned alongside the data.
    trained = zstandard.train_dictionary(32 * 1024, dictionary_corpus)
    compressor = zstandard.ZstdCompressor(level=3, dict_data=trained)
    found.append(
        Codec(
            "zstd-3 + 32 KiB dict",
            compressor.compress,
            zstandard.ZstdDecompressor(dict_data=trained).decompress,
        )
    )
    return found


def _best_time(run: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(codec: Codec, samples: list[Sample], *, threshold: int, repeat: int) -> Result:
    raw = [s.text.encode() for s in samples]
    eligible = [
        (s.kind, data) for s, data in zip(samples, raw, strict=True) if len(data) > threshold
    ]
    packed = [codec.compress(data) for _kind, data in eligible]
    for (_kind, data), blob in zip(eligible, packed, strict=True):
        assert codec.decompress(blob) == data, codec.name
    stored = [min(len(b), len(d)) + HEADER for (_k, d), b in zip(eligible, packed, strict=True)]
    eligible_raw = sum(len(d) + HEADER for _k, d in eligible)
    kind_raw: dict[str, int] = defaultdict(int)
    kind_stored: dict[str, int] = defaultdict(int)
    for (kind, data), size in zip(eligible, stored, strict=True):
        kind_raw[kind] += len(data) + HEADER
        kind_stored[kind] += size
    small = sum(len(d) + HEADER for d in raw if len(d) <= threshold)
    total_bytes = sum(len(d) for _k, d in eligible)

    def compress_all() -> None:
        for _kind, data in eligible:
            codec.compress(data)

    def decompress_all() -> None:
        for blob in packed:
            codec.decompress(blob)

    return Result(
        codec=codec.name,
        eligible_ratio=sum(stored) / eligible_raw,
        corpus_ratio=(sum(stored) + small) / sum(len(d) + HEADER for d in raw),
        median_saving=statistics.median(
            1 - size / (len(d) + HEADER) for (_k, d), size in zip(eligible, stored, strict=True)
        ),
        compress_mbs=total_bytes / _best_time(compress_all, repeat) / 1e6,
        decompress_mbs=total_bytes / _best_time(decompress_all, repeat) / 1e6,
        by_kind={kind: kind_stored[kind] / kind_raw[kind] for kind in sorted(kind_raw)},
    )


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [
        f"Python {platform.python_version()}",
        f"zlib {zlib.ZLIB_RUNTIME_VERSION}",
    ]
    if zstandard is not None:
        libzstd = ".".join(map(str, zstandard.ZSTD_VERSION))
        versions.append(f"zstandard {zstandard.__version__} (libzstd {libzstd})")
    cores = os.cpu_count() or 1
    return f"{cpu} ({cores} cores), {platform.system()} {platform.machine()}; " + ", ".join(
        versions
    )


def report(results: list[Result], samples: list[Sample], *, threshold: int) -> str:
    raw = [len(s.text.encode()) for s in samples]
    eligible = [n for n in raw if n > threshold]
    lines = [
        f"Corpus: `bench/corpus.py`, {len(samples)} messages (seed {SEED}), "
        f"{sum(raw) / 1024:.0f} KiB UTF-8; {len(eligible)} above the {threshold}-byte "
        f"threshold ({sum(eligible) / 1024:.0f} KiB, median {statistics.median(eligible):.0f} B). "
        "Each message compressed on its own; speeds in MB/s of UTF-8 input, best of the runs, "
        "one core.",
        "",
        "| codec | stored/raw (above threshold) | stored/raw (whole corpus) "
        "| median saving per message | compress MB/s | decompress MB/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.codec} | {r.eligible_ratio:.3f} | {r.corpus_ratio:.3f} "
            f"| {r.median_saving:.0%} | {r.compress_mbs:.0f} | {r.decompress_mbs:.0f} |"
        )
    kinds = list(results[0].by_kind)
    lines += [
        "",
        "Stored/raw by kind of message (above the threshold):",
        "",
        "| codec | " + " | ".join(kinds) + " |",
        "| --- |" + " ---: |" * len(kinds),
    ]
    for r in results:
        lines.append(f"| {r.codec} | " + " | ".join(f"{r.by_kind[k]:.3f}" for k in kinds) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE)
    parser.add_argument("--threshold", type=int, default=THRESHOLD)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="append to docs/performance.md")
    parser.add_argument("--smoke", action="store_true", help="tiny corpus, one run (make test)")
    args = parser.parse_args()
    if args.smoke:
        args.size, args.repeat = 100, 1

    samples = build_corpus(args.size)
    training = [s.text.encode() for s in build_corpus(args.size, seed=SEED + 1)]
    results = [
        measure(codec, samples, threshold=args.threshold, repeat=args.repeat)
        for codec in codecs(training)
    ]
    table = report(results, samples, threshold=args.threshold)
    heading = f"### Run of {date.today().isoformat()}\n\nMachine: {machine()}."
    print(f"{heading}\n\n{table}")
    if zstandard is None:
        print("\n(zstandard is not installed: only zlib was measured.)", file=sys.stderr)
    if args.write:
        DOCS.write_text(append_run(DOCS.read_text() if DOCS.exists() else "", heading, table))
        print(f"\nAppended to the Compression section of {DOCS}.", file=sys.stderr)


def append_run(document: str, heading: str, table: str) -> str:
    """``document`` with the run added at the end of its Compression section."""
    document = document or "# Performance\n"
    if "\n## Compression" not in document:
        document = document.rstrip("\n") + "\n\n## Compression\n"
    start = document.index("\n## Compression") + 1
    end = document.find("\n## ", start)
    end = len(document) if end == -1 else end
    section = document[start:end].rstrip("\n") + f"\n\n{heading}\n\n{table}\n"
    rest = document[end:].lstrip("\n")
    return document[:start] + section + ("\n" + rest if rest else "")


if __name__ == "__main__":
    main()
