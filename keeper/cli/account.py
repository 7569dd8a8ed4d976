"""`keeper account new|show`: encrypted JSON keystores for --keystore."""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from keeper.config import Settings, load_account, warn_if_exposed
from keeper.errors import ConfigError


async def account_new(settings: Settings) -> int:
    """Creates an encrypted keystore (never overwriting a file) and prints its address."""
    keystore, password = _keystore_paths(settings)
    path = Path(keystore)
    if path.exists():
        raise ConfigError(f"keystore {keystore} already exists; refusing to overwrite it")
    warn_if_exposed(password, "password file")
    try:
        secret = Path(password).read_text().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    if not secret:
        raise ConfigError(f"password file {password} is empty")
    account: LocalAccount = Account.create()
    encrypted = json.dumps(Account.encrypt(account.key, secret))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"keystore {keystore} already exists; refusing to overwrite it") from exc
    except OSError as exc:
        raise ConfigError(f"cannot write keystore {keystore}: {exc.strerror}") from exc
    with os.fdopen(fd, "w") as out:
        out.write(encrypted + "\n")
    print(account.address)
    return 0


async def account_show(settings: Settings) -> int:
    """Decrypts the keystore (or reads the key) and prints the address."""
    _keystore_paths(settings)
    print(load_account(settings).address)
    return 0


def _keystore_paths(settings: Settings) -> tuple[str, str]:
    if not settings.keystore or not settings.password_file:
        raise ConfigError("give --keystore FILE and --password-file FILE")
    return settings.keystore, settings.password_file
