"""One rule for hiding secrets in store addresses: every URL and DSN corequeue shows goes here.

Configuration, the Redis driver and the PostgreSQL driver all show store addresses in reprs,
logs and error messages; they all call `redact()`, and refuse with `refuse_ambiguous()` a URL
whose credentials cannot be told apart from its host.
"""

from __future__ import annotations

import re
from typing import Final

from corequeue.errors import InvalidOption

MASK: Final = "***"
"""What stands in for a secret."""

_PASSWORD_OPTION: Final = re.compile(
    r"""((?:^|[\s?&;])(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s&;#]*)""", re.IGNORECASE
)
_AUTHORITY_END: Final = re.compile(r"[/?#]")


def redact(target: str) -> str:
    """Return a URL or libpq DSN fit to show: its credentials and password options masked.

    In a URL, everything between the scheme and the last `@` is masked (the user too: with an
    unencoded `/`, `?` or `#` in a password no parser can say where the user ends), and so is
    the value of every `password=` or `sslpassword=` option. In a `key=value` DSN, the values
    of those options are masked.

    Example:
        >>> redact("redis://worker:s3cret@cache:6379/0")
        'redis://***@cache:6379/0'
        >>> redact("postgresql://app:pa/ss#w@db/app?sslmode=require&password=x")
        'postgresql://***@db/app?sslmode=require&password=***'
        >>> redact("host=db password='s3 cret' dbname=app")
        'host=db password=*** dbname=app'
        >>> redact("redis://cache:6379/0")
        'redis://cache:6379/0'
    """
    scheme, separator, rest = target.partition("://")
    if separator:
        _, at, after = rest.rpartition("@")
        target = f"{scheme}://{MASK}@{after}" if at else target
    return _PASSWORD_OPTION.sub(lambda found: found.group(1) + MASK, target)


def is_ambiguous(url: str) -> bool:
    """Whether `url` has an `@` after its authority: an unencoded `/`, `?` or `#` before it.

    URL parsers end the authority (user, password, host, port) at the first `/`, `?` or `#`,
    so `redis://:pa/ss@cache:6379/0` would be read as host `:pa` and path `/ss@cache:6379/0`.

    Example:
        >>> is_ambiguous("redis://:pa/ss@cache:6379/0"), is_ambiguous("redis://:pa%2Fss@cache/0")
        (True, False)
    """
    _, separator, rest = url.partition("://")
    if not separator:
        return False
    end = _AUTHORITY_END.search(rest)
    return end is not None and "@" in rest[end.start() :]


def refuse_ambiguous(url: str, what: str) -> None:
    """Raise InvalidOption, without quoting `url`, when `is_ambiguous(url)`.

    Args:
        url: The URL to check.
        what: What the URL is, for the message ("Redis URL", "PostgreSQL DSN").

    Raises:
        InvalidOption: The URL holds an unencoded `/`, `?` or `#` before an `@`.
    """
    if is_ambiguous(url):
        raise InvalidOption(ambiguity(what))


def ambiguity(what: str) -> str:
    """The message that refuses an ambiguous URL: what is wrong and how to fix it."""
    return (
        f"the {what} has an '@' after a '/', '?' or '#': a user or password holding one of "
        "those must be percent-encoded ('/' as %2F, '?' as %3F, '#' as %23, '@' as %40)"
    )
