"""The only module that touches the API-key encryption keys.

Keys are Fernet keys held in a MultiFernet: the first key encrypts, every key decrypts,
so a rotation adds a new first key and keeps the old ones readable until the operator
retires them. They come from PARLEY_ENCRYPTION_KEYS (comma-separated), else the file
named by PARLEY_ENCRYPTION_KEYS_FILE, else DATA_DIR/encryption_keys (one key a line,
0600, generated on the first migrate of a fresh database). They are never derived from
SECRET_KEY: rotating SECRET_KEY must not lose stored API keys.

The key file is re-read when it changes, so running workers pick up a rotation done by
`manage.py rotate_encryption_key` without a restart.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from config.secret_files import SECRET_FILE_MODE

KEY_FILE_NAME = "encryption_keys"


class EncryptionKeyError(Exception):
    """The keys are missing or malformed: nothing can be encrypted or decrypted."""


class DecryptionFailed(Exception):
    """A stored ciphertext does not open with any current key (wrong or retired key)."""


@dataclass(frozen=True)
class KeySource:
    description: str  # for operators: "PARLEY_ENCRYPTION_KEYS" or a file path
    path: Path | None  # the file the keys are read from, if any
    managed: bool  # whether Parley may create and rewrite that file (not a Docker secret)


_lock = threading.Lock()
_cache: dict[str, object] = {}


def key_source() -> KeySource:
    if settings.PARLEY_ENCRYPTION_KEYS:
        return KeySource("the PARLEY_ENCRYPTION_KEYS variable", None, managed=False)
    if settings.PARLEY_ENCRYPTION_KEYS_FILE:
        path = Path(settings.PARLEY_ENCRYPTION_KEYS_FILE)
        return KeySource(f"the file {path} (PARLEY_ENCRYPTION_KEYS_FILE)", path, managed=False)
    path = Path(settings.DATA_DIR) / KEY_FILE_NAME
    return KeySource(f"the file {path}", path, managed=True)


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


@sensitive_variables("raw", "keys", "text")
def _parse_keys(raw: str, origin: str) -> list[bytes]:
    keys = []
    for line in raw.replace(",", "\n").splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            Fernet(text.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise EncryptionKeyError(
                f"{origin} holds a value that is not a Fernet key (32 url-safe base64 bytes)."
            ) from None
        keys.append(text.encode("ascii"))
    if not keys:
        raise EncryptionKeyError(f"{origin} holds no encryption key.")
    return keys


def key_file_exists() -> bool:
    source = key_source()
    return source.path is None or source.path.exists()


@sensitive_variables("keys")
def _current_keys() -> list[bytes]:
    """The keys in force, primary first. Raises EncryptionKeyError when there are none."""
    source = key_source()
    if source.path is None:
        cache_key = f"env:{hash(settings.PARLEY_ENCRYPTION_KEYS)}"
        with _lock:
            if _cache.get("id") != cache_key:
                _cache.update(
                    id=cache_key,
                    keys=_parse_keys(settings.PARLEY_ENCRYPTION_KEYS, source.description),
                )
            return list(_cache["keys"])  # type: ignore[call-overload]
    try:
        stat = source.path.stat()
    except FileNotFoundError:
        raise EncryptionKeyError(f"The encryption key file {source.path} is missing.") from None
    cache_key = f"file:{source.path}:{stat.st_ino}:{stat.st_mtime_ns}:{stat.st_size}"
    with _lock:
        if _cache.get("id") != cache_key:
            try:
                raw = source.path.read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as error:
                reason = error.__class__.__name__
                raise EncryptionKeyError(
                    f"The encryption key file {source.path} cannot be read: {reason}."
                ) from None
            _cache.update(id=cache_key, keys=_parse_keys(raw, source.description))
        return list(_cache["keys"])  # type: ignore[call-overload]


def _fernet() -> MultiFernet:
    return _multi_fernet(tuple(_current_keys()))


@functools.lru_cache(maxsize=4)
@sensitive_variables("keys")
def _multi_fernet(keys: tuple[bytes, ...]) -> MultiFernet:
    # Built once per key set: every upstream call decrypts its model's key.
    return MultiFernet([Fernet(key) for key in keys])


def validate_keys() -> int:
    """How many keys are in force; raises EncryptionKeyError when they are missing or bad."""
    return len(_current_keys())


@sensitive_variables("plaintext")
def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    return _decrypt(tuple(_current_keys()), token)


@functools.lru_cache(maxsize=256)
@sensitive_variables("keys")
def _decrypt(keys: tuple[bytes, ...], token: str) -> str:
    """Remembered per key set and ciphertext (a failure is not): every upstream call reads
    its model's key, and opening it cost ~0.2 ms of the send path. A rotated or retired
    key set is another key set, so no value outlives the keys that opened it."""
    try:
        return _multi_fernet(keys).decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise DecryptionFailed("the stored value does not decrypt with the current keys") from None


def is_token(value: str) -> bool:
    """Whether a stored value looks like one of our ciphertexts (for the plaintext migration)."""
    return value.startswith("gAAAAA")


def reencrypt(token: str) -> str:
    """The same secret encrypted with the current primary key."""
    try:
        return _fernet().rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken:
        raise DecryptionFailed("the stored value does not decrypt with the current keys") from None


def _write_key_file(path: Path, keys: list[str]) -> None:
    """Replace the key file atomically, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Parley API-key encryption keys. The first encrypts; all decrypt. Keep a copy.\n"
    fd, temp_name = tempfile.mkstemp(prefix=".encryption_keys.", dir=path.parent)
    try:
        os.fchmod(fd, SECRET_FILE_MODE)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(header + "\n".join(keys) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def create_key_file() -> bool:
    """Generate the key file if Parley manages one and it does not exist; True if created."""
    source = key_source()
    if not source.managed or source.path is None or source.path.exists():
        return False
    _write_key_file(source.path, [generate_key()])
    return True


@sensitive_variables("new_key", "keys")
def add_primary_key(new_key: str | None = None) -> None:
    """Put a new key first in the managed key file, keeping the old ones for decryption."""
    source = key_source()
    if not source.managed or source.path is None:
        raise EncryptionKeyError(
            f"The keys come from {source.description}: put the new key first there, "
            "restart Parley, then run rotate_encryption_key --reencrypt-only."
        )
    keys = [key.decode("ascii") for key in _current_keys()]
    new_key = new_key or generate_key()
    _parse_keys(new_key, "The new key")
    if new_key in keys:
        keys.remove(new_key)
    _write_key_file(source.path, [new_key, *keys])


def retire_old_keys() -> int:
    """Keep only the primary key in the managed key file; returns how many were removed."""
    source = key_source()
    if not source.managed or source.path is None:
        raise EncryptionKeyError(
            f"The keys come from {source.description}: remove the old keys there."
        )
    keys = [key.decode("ascii") for key in _current_keys()]
    _write_key_file(source.path, keys[:1])
    return len(keys) - 1


def decrypts_with_primary(token: str) -> bool:
    """Whether the primary key alone opens the token (safe to retire the others)."""
    keys = _current_keys()
    try:
        Fernet(keys[0]).decrypt(token.encode("ascii"))
    except InvalidToken:
        return False
    return True
