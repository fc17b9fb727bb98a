"""A PostgreSQL ``DATABASE_URL`` read as libpq reads it: no password in it, TLS off-machine.

Two things are checked on libpq's own reading of the URL (psycopg's ``conninfo_to_dict``
when psycopg is installed, else the same rules written out here), never on a pattern:

- No password, wherever libpq would find one: ``user:PASSWORD@`` (a password holding
  ``#`` or ``?`` is still a password to libpq, though ``urllib`` reads it as a fragment or
  a query) or ``?password=``. ``!plugin config`` shows the URL in chat.
- To a host that is not this machine, the same rule as ``http://`` carrier URLs: the
  password goes only through TLS that verifies the server (``sslmode=verify-full`` or
  ``verify-ca``), unless ``DATABASE_TLS`` says otherwise explicitly: ``require`` (TLS, the
  server not verified; a server declining TLS is refused, never fallen back from) or
  ``off`` (libpq's own ``sslmode``, clear text possible). libpq's default ``prefer`` falls
  back to clear text when the server (or someone in between) declines TLS.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote

from att_sms.carrier.transport import is_loopback_host

TLS_MODES = ("verify", "require", "off")
VERIFIED_SSLMODES = ("verify-full", "verify-ca")
ENCRYPTED_SSLMODES = ("require", *VERIFIED_SSLMODES)
_SCHEMES = ("postgresql://", "postgres://")


class DatabaseUrlError(ValueError):
    """The URL cannot be used; the text never quotes the URL (it may hold a password)."""


class PasswordInUrlError(DatabaseUrlError):
    """The URL holds a password."""


def conninfo(url: str) -> dict[str, str]:
    """The connection parameters libpq takes from ``url``."""
    try:
        from psycopg import conninfo as pg_conninfo
        from psycopg import errors as pg_errors
    except ImportError:
        return _parse_like_libpq(url)
    try:
        return {k: str(v) for k, v in pg_conninfo.conninfo_to_dict(url).items()}
    except (pg_errors.Error, ValueError):
        raise DatabaseUrlError("is not a valid postgresql:// URL") from None


def _parse_like_libpq(url: str) -> dict[str, str]:
    """libpq's URI rules (``conninfo_uri_parse_options``): the user part runs to the first
    ``@`` before any ``/``, whatever ``#`` or ``?`` it holds."""
    lowered = url.lower()
    scheme = next((s for s in _SCHEMES if lowered.startswith(s)), None)
    if scheme is None:
        raise DatabaseUrlError("is not a valid postgresql:// URL")
    rest = url[len(scheme) :]
    params: dict[str, str] = {}
    end = next((i for i, c in enumerate(rest) if c in "@/"), len(rest))
    if end < len(rest) and rest[end] == "@":
        user, colon, password = rest[:end].partition(":")
        if user:
            params["user"] = unquote(user)
        if colon and password:
            params["password"] = unquote(password)
        rest = rest[end + 1 :]
    netloc_end = next((i for i, c in enumerate(rest) if c in "/?"), len(rest))
    netlocs = [_host_and_port(h) for h in rest[:netloc_end].split(",")] if netloc_end else []
    if any(host for host, _ in netlocs):
        params["host"] = ",".join(unquote(host) for host, _ in netlocs)
    if any(port for _, port in netlocs):
        params["port"] = ",".join(port for _, port in netlocs)
    rest = rest[netloc_end:]
    path, _, query = rest.partition("?")
    if path.strip("/"):
        params["dbname"] = unquote(path.lstrip("/"))
    for key, value in parse_qsl(query, keep_blank_values=True):
        params[key] = value
    return params


def _host_and_port(netloc: str) -> tuple[str, str]:
    if netloc.startswith("["):
        close = netloc.find("]")
        if close < 0:
            return netloc, ""
        return netloc[1:close], netloc[close + 2 :] if netloc[close + 1 : close + 2] == ":" else ""
    host, _, port = netloc.partition(":")
    return host, port


def is_local_host(host: str) -> bool:
    """A Unix socket (a path, or libpq's default when no host is given) or a loopback address."""
    host = host.strip()
    return not host or host.startswith(("/", "@")) or is_loopback_host(host)


def remote_hosts(params: Mapping[str, str], env: Mapping[str, str]) -> list[str]:
    """Every host or address libpq may connect to that is not this machine."""
    hosts = (params.get("host") or env.get("PGHOST") or "").split(",")
    addresses = (params.get("hostaddr") or env.get("PGHOSTADDR") or "").split(",")
    return [h for h in [*hosts, *addresses] if h.strip() and not is_local_host(h)]


def check_database_url(url: str, tls: str, env: Mapping[str, str]) -> str:
    """``url`` as the bot will use it (with ``sslmode=require`` added when ``tls`` is
    ``require`` and the URL asks for nothing stronger), or DatabaseUrlError."""
    if tls not in TLS_MODES:
        raise DatabaseUrlError(f"DATABASE_TLS must be one of {', '.join(TLS_MODES)}")
    try:
        params = conninfo(url)
    except DatabaseUrlError:
        params = _parse_like_libpq(url)  # only to say so when a password is what is wrong
        if not any(k.lower() == "password" and v for k, v in params.items()):
            raise
    if any(k.lower() == "password" and v for k, v in params.items()):
        raise PasswordInUrlError(
            "must not carry a password (the config is shown by !plugin config)"
        )
    given = (params.get("sslmode") or "").lower()
    sslmode = given or (env.get("PGSSLMODE") or "prefer").lower()
    if tls == "off":
        return url
    if tls == "require":
        if given and given not in ENCRYPTED_SSLMODES:
            raise DatabaseUrlError(
                f"says sslmode={given} but DATABASE_TLS is require: remove sslmode or use "
                "sslmode=verify-full"
            )
        if given:
            return url
        return url + ("&" if "?" in url else "?") + "sslmode=require"
    remote = remote_hosts(params, env)
    if remote and sslmode not in VERIFIED_SSLMODES:
        raise DatabaseUrlError(
            f"to {remote[0]!r} with sslmode={sslmode} could send the password in clear (libpq "
            "falls back to no TLS when the server declines it): add sslmode=verify-full (with "
            "sslrootcert), or set DATABASE_TLS to require (TLS, server not verified) or off "
            "(no TLS) explicitly"
        )
    return url
