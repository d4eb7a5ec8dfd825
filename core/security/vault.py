"""The encrypted vault: named secrets sealed with AES-256-GCM under a passphrase."""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from core.errors import SecretNotFound, VaultError, VaultKeyMismatch
from core.storage.vault_repo import SecretRecord, VaultChanged, VaultMetaRecord, VaultRepository

log = logging.getLogger(__name__)

KDF_NAME = "scrypt"
_KEY_BYTES = 32
_SALT_BYTES = 16
_NONCE_BYTES = 12
# fullmatch: "$" alone would also accept a trailing newline.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# How often rotate() starts over when another process changes the vault under it.
_ROTATE_ATTEMPTS = 3

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """Cost of turning the passphrase into the key-encryption key (scrypt n, r, p).

    The defaults take about 0.1 s and 32 MiB. The bounds refuse values that a damaged
    ``vault_meta`` row could use to exhaust memory.
    """

    n: int = 2**15
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if self.n < 2 or self.n > 2**22 or self.n & (self.n - 1):
            raise VaultError(f"scrypt n must be a power of two from 2 to 2**22 (got {self.n})")
        if not 1 <= self.r <= 32 or not 1 <= self.p <= 16:
            raise VaultError(f"scrypt r must be 1..32 and p 1..16 (got r={self.r}, p={self.p})")


@dataclass(frozen=True, slots=True)
class _Keys:
    """What an open vault holds in memory; repr-less so no key reaches a traceback."""

    kek: bytes = field(repr=False)
    data_key: bytes = field(repr=False)
    key_version: int
    salt: bytes = field(repr=False)
    params: ScryptParams
    created_at: datetime


class Vault:
    """Named secrets, encrypted at rest with envelope encryption.

    * The passphrase goes through scrypt (``ScryptParams``, random 16-byte salt) to give
      the key-encryption key (KEK). It is derived once per ``open`` and kept in memory.
    * A random 256-bit data key encrypts the entries. It is stored only wrapped:
      AES-256-GCM under the KEK, its version bound in as associated data.
    * Each entry is AES-256-GCM under the data key with a fresh 96-bit nonce and the
      entry's name as associated data, so a ciphertext copied to another name, or
      altered in any way, fails to decrypt instead of yielding a wrong value.

    A wrong passphrase fails to unwrap the data key (``VaultKeyMismatch``) and changes
    nothing. ``rotate`` seals everything under a fresh data key (and a fresh salt and
    KEK for a new passphrase) in one transaction. Clear values and keys never appear in
    logs, messages or ``repr``.
    """

    def __init__(
        self,
        repo: VaultRepository,
        *,
        keys: _Keys,
        kdf_params: ScryptParams,
        clock: Clock,
    ) -> None:
        # Use Vault.open(); this only assembles an already unlocked vault.
        self._repo = repo
        self._keys = keys
        self._kdf_params = kdf_params
        self._clock = clock
        self._rotating = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        repo: VaultRepository,
        passphrase: str,
        *,
        kdf_params: ScryptParams | None = None,
        clock: Clock | None = None,
    ) -> Vault:
        """Unlock the vault, creating it when the database holds none.

        ``kdf_params`` apply to a new vault and to a new passphrase given to ``rotate``;
        an existing vault is opened with the parameters stored with it. Raises
        ``VaultKeyMismatch`` when ``passphrase`` does not open the stored vault.
        """
        secret = _passphrase_bytes(passphrase)
        params = kdf_params or ScryptParams()
        now = clock or _utc_now
        meta = await repo.get_meta()
        if meta is None:
            salt = os.urandom(_SALT_BYTES)
            kek = await _derive(secret, salt, params)
            keys = _Keys(
                kek=kek,
                data_key=AESGCM.generate_key(bit_length=256),
                key_version=1,
                salt=salt,
                params=params,
                created_at=now(),
            )
            stored = await repo.insert_meta_if_absent(_sealed_meta(keys, rotated_at=None))
            if stored.salt == salt:
                log.info("vault created key_version=1")
                return cls(repo, keys=keys, kdf_params=params, clock=now)
            # Another process created the vault first: open theirs like any existing one.
            meta = stored
        stored_params = _stored_params(meta)
        kek = await _derive(secret, meta.salt, stored_params)
        keys = _unlock(kek, meta, stored_params)
        return cls(repo, keys=keys, kdf_params=params, clock=now)

    async def get(self, name: str) -> str:
        """The clear value of entry ``name``; raises ``SecretNotFound``."""
        _check_name(name)
        record = await self._repo.get_secret(name)
        if record is not None and record.key_version != self._keys.key_version:
            # Sealed under a data key another process rotated to: load it, read again.
            await self._refresh()
            record = await self._repo.get_secret(name)
        if record is None:
            raise SecretNotFound(name)
        return _open_entry(self._keys, record)

    async def set(self, name: str, value: str) -> None:
        """Store ``value`` under ``name``, replacing any previous value."""
        _check_name(name)
        plain = value.encode("utf-8")
        try:
            await self._repo.upsert_secret(self._seal(name, plain))
        except VaultChanged:
            # Another process rotated meanwhile: pick up its data key and seal again.
            await self._refresh()
            await self._repo.upsert_secret(self._seal(name, plain))

    async def delete(self, name: str) -> None:
        """Remove entry ``name``; raises ``SecretNotFound`` when there is none."""
        _check_name(name)
        if not await self._repo.delete_secret(name):
            raise SecretNotFound(name)

    async def rotate(self, *, new_passphrase: str | None = None) -> int:
        """Re-encrypt every entry under a fresh data key; returns how many were re-encrypted.

        With ``new_passphrase`` the data key is wrapped under a new salt and KEK too, and
        only the new passphrase opens the vault afterwards. Everything is written in one
        transaction: a failure leaves the old keys and entries working.
        """
        async with self._rotating:
            kek_parts: tuple[bytes, bytes, ScryptParams] | None = None
            if new_passphrase is not None:
                secret = _passphrase_bytes(new_passphrase)
                salt = os.urandom(_SALT_BYTES)
                kek_parts = (await _derive(secret, salt, self._kdf_params), salt, self._kdf_params)
            for _attempt in range(_ROTATE_ATTEMPTS):
                await self._refresh()
                try:
                    return await self._rotate_once(kek_parts)
                except VaultChanged:
                    continue
            raise VaultChanged()

    async def list(self) -> builtins.list[str]:
        """Names of every entry, sorted; values are not decrypted."""
        return await self._repo.list_names()

    def __repr__(self) -> str:
        return f"Vault(key_version={self._keys.key_version})"

    async def _rotate_once(self, kek_parts: tuple[bytes, bytes, ScryptParams] | None) -> int:
        old = self._keys
        records = await self._repo.list_secrets()
        kek, salt, params = kek_parts or (old.kek, old.salt, old.params)
        new = _Keys(
            kek=kek,
            data_key=AESGCM.generate_key(bit_length=256),
            key_version=old.key_version + 1,
            salt=salt,
            params=params,
            created_at=old.created_at,
        )
        # Decrypt everything before writing anything: a damaged entry aborts the rotation.
        resealed = [
            _seal_entry(
                new,
                name=record.name,
                plain=_open_entry(old, record).encode("utf-8"),
                created_at=record.created_at,
                updated_at=record.updated_at,
            )
            for record in records
        ]
        await self._repo.replace_all(
            _sealed_meta(new, rotated_at=self._clock()),
            resealed,
            expected_key_version=old.key_version,
            expected_nonces={record.name: record.nonce for record in records},
        )
        self._keys = new
        log.info("vault rotated key_version=%d entries=%d", new.key_version, len(resealed))
        return len(resealed)

    async def _refresh(self) -> None:
        # Another process may have rotated: the same passphrase (same salt) still unwraps
        # its data key with the KEK we hold; a new passphrase needs a restart.
        meta = await self._repo.get_meta()
        if meta is None:
            raise VaultError("the vault's settings row has disappeared from the database")
        current = self._keys
        if meta.key_version == current.key_version:
            return
        if meta.salt != current.salt or _stored_params(meta) != current.params:
            raise VaultKeyMismatch(
                "the vault was rotated to a new passphrase by another process; "
                "restart with the new vault_key"
            )
        self._keys = _unlock(current.kek, meta, current.params)

    def _seal(self, name: str, plain: bytes) -> SecretRecord:
        now = self._clock()
        return _seal_entry(self._keys, name=name, plain=plain, created_at=now, updated_at=now)


def _passphrase_bytes(passphrase: str) -> bytes:
    if not passphrase or not passphrase.strip():
        raise VaultError(
            "vault key is empty: set [security] vault_key to a reference to a passphrase "
            '(for example "env:SWITCHBOARD_VAULT_KEY")'
        )
    # NFC, so the same passphrase typed on another system derives the same key.
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise VaultError(
            f"invalid vault entry name {name!r}: use 1 to 128 letters, digits, '_', '.' "
            "or '-', starting with a letter or digit"
        )


async def _derive(secret: bytes, salt: bytes, params: ScryptParams) -> bytes:
    # scrypt is deliberately slow (about 0.1 s at the defaults): keep it off the loop.
    def derive() -> bytes:
        kdf = Scrypt(salt=salt, length=_KEY_BYTES, n=params.n, r=params.r, p=params.p)
        return kdf.derive(secret)

    return await asyncio.to_thread(derive)


def _stored_params(meta: VaultMetaRecord) -> ScryptParams:
    if meta.kdf != KDF_NAME:
        raise VaultError(f"the vault uses key derivation {meta.kdf!r}, which is not supported")
    return ScryptParams(n=meta.scrypt_n, r=meta.scrypt_r, p=meta.scrypt_p)


def _wrap_aad(key_version: int) -> bytes:
    return f"switchboard vault data key v{key_version}".encode("ascii")


def _sealed_meta(keys: _Keys, *, rotated_at: datetime | None) -> VaultMetaRecord:
    nonce = os.urandom(_NONCE_BYTES)
    wrapped = AESGCM(keys.kek).encrypt(nonce, keys.data_key, _wrap_aad(keys.key_version))
    return VaultMetaRecord(
        kdf=KDF_NAME,
        scrypt_n=keys.params.n,
        scrypt_r=keys.params.r,
        scrypt_p=keys.params.p,
        salt=keys.salt,
        wrapped_key=wrapped,
        wrap_nonce=nonce,
        key_version=keys.key_version,
        created_at=keys.created_at,
        rotated_at=rotated_at,
    )


def _unlock(kek: bytes, meta: VaultMetaRecord, params: ScryptParams) -> _Keys:
    try:
        data_key = AESGCM(kek).decrypt(
            meta.wrap_nonce, meta.wrapped_key, _wrap_aad(meta.key_version)
        )
    except InvalidTag:
        raise VaultKeyMismatch() from None
    return _Keys(
        kek=kek,
        data_key=data_key,
        key_version=meta.key_version,
        salt=meta.salt,
        params=params,
        created_at=meta.created_at,
    )


def _seal_entry(
    keys: _Keys, *, name: str, plain: bytes, created_at: datetime, updated_at: datetime
) -> SecretRecord:
    nonce = os.urandom(_NONCE_BYTES)
    return SecretRecord(
        name=name,
        nonce=nonce,
        ciphertext=AESGCM(keys.data_key).encrypt(nonce, plain, name.encode("utf-8")),
        key_version=keys.key_version,
        created_at=created_at,
        updated_at=updated_at,
    )


def _open_entry(keys: _Keys, record: SecretRecord) -> str:
    if record.key_version != keys.key_version:
        raise VaultError(
            f"vault entry {record.name!r} is sealed under key version {record.key_version}, "
            f"but the vault is at {keys.key_version}: the entry cannot be decrypted"
        )
    try:
        plain = AESGCM(keys.data_key).decrypt(
            record.nonce, record.ciphertext, record.name.encode("utf-8")
        )
    except InvalidTag:
        # `from None`: the cause carries nothing useful and the message stays value-free.
        raise VaultError(
            f"vault entry {record.name!r} cannot be decrypted: it was altered or copied "
            "from another entry; set it again"
        ) from None
    return plain.decode("utf-8")
