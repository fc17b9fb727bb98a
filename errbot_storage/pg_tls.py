"""TLS to PostgreSQL for errbot's settings: the same rule as the AttSms store's DATABASE_URL.

To a host that is not this machine, the password goes only through TLS that verifies the
server (``sslmode=verify-full`` or ``verify-ca``), unless STORAGE_CONFIG ``tls`` says
``require`` (TLS, server not verified: ``sslmode=require`` is added, so a server declining
TLS is refused, never fallen back from) or ``off`` (libpq's own ``sslmode``). libpq's
default ``prefer`` sends the password in clear when the server declines TLS. The DSN is
read as libpq reads it (psycopg's ``conninfo_to_dict``) and never quoted back.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from errbot_storage.sqlite_kv import StorageConfigError

TLS_MODES = ("verify", "require", "off")
VERIFIED = ("verify-full", "verify-ca")
ENCRYPTED = ("require", *VERIFIED)


def _local(host: str) -> bool:
    host = host.strip()
    if not host or host.startswith(("/", "@")) or host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def check_tls(dsn: str, tls: object, env: Mapping[str, str]) -> str:
    """``dsn`` as the storage will use it, or StorageConfigError."""
    if tls not in TLS_MODES:
        raise StorageConfigError(f"STORAGE_CONFIG 'tls' must be one of {', '.join(TLS_MODES)}")
    try:
        from psycopg import conninfo
    except ImportError:
        return dsn  # PostgresKV says psycopg is needed
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - psycopg's parse error; the DSN is never quoted
        raise StorageConfigError("STORAGE_CONFIG 'dsn' is not a valid postgresql:// URL") from None
    given = str(params.get("sslmode") or "").lower()
    sslmode = given or (env.get("PGSSLMODE") or "prefer").lower()
    if tls == "off":
        return dsn
    if tls == "require":
        if given and given not in ENCRYPTED:
            raise StorageConfigError(
                f"STORAGE_CONFIG 'dsn' says sslmode={given} but 'tls' is require"
            )
        return dsn if given else dsn + ("&" if "?" in dsn else "?") + "sslmode=require"
    hosts = str(params.get("host") or env.get("PGHOST") or "").split(",")
    hosts += str(params.get("hostaddr") or env.get("PGHOSTADDR") or "").split(",")
    remote = [h for h in hosts if h.strip() and not _local(h)]
    if remote and sslmode not in VERIFIED:
        raise StorageConfigError(
            f"STORAGE_CONFIG 'dsn' to {remote[0]!r} with sslmode={sslmode} could send the "
            "password in clear: add sslmode=verify-full (with sslrootcert), or set "
            "STORAGE_CONFIG 'tls' to require (TLS, server not verified) or off explicitly"
        )
    return dsn
