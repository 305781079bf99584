"""Users, roles and password checking.

Passwords are stored only as salted scrypt hashes, compared in constant time.
A login for an unknown name checks against a dummy hash of the same cost, so
response time does not tell which names exist.
"""

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

ROLES = frozenset({"reader", "player", "admin"})

#: The name that logs in without a password to a play-money table.
GUEST = "guest"

# scrypt cost: ~16 MiB and tens of milliseconds per check on a 2-core machine.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SALT_BYTES = 16
_HASH_BYTES = 32


class AccountError(ValueError):
    """A user record or users file is not valid."""


def hash_password(password: str, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """Return ``scrypt$n$r$p$salt$hash`` (base64) for ``password`` with a fresh salt."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, n, r, p)
    return "$".join(["scrypt", str(n), str(r), str(p), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the ``stored`` hash; constant-time comparison."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@dataclass(frozen=True)
class HashCost:
    """scrypt's cost parameters: N (CPU and memory), r (block size), p (parallelism)."""

    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1) or self.r < 1 or self.p < 1:
            raise AccountError(f"scrypt N must be a power of two and r, p at least 1: {self}")


DEFAULT_COST = HashCost()


def hash_cost(stored: str) -> HashCost | None:
    """The cost a stored hash was made with, or None if it is not a valid scrypt hash."""
    try:
        scheme, n, r, p, _salt, _digest = stored.split("$")
        return HashCost(int(n), int(r), int(p)) if scheme == "scrypt" else None
    except (ValueError, AccountError):
        return None


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=256 * n * r + 1024 * 1024,
        dklen=_HASH_BYTES,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


#: Longest login name.
MAX_USERNAME_LENGTH = 32


def canonical_username(name: str) -> str:
    """The form a login name is stored and compared in: names are case-insensitive (ASCII lower case)."""
    return name.lower() if name.isascii() else name


def check_username(name: str) -> str:
    """``name`` in its canonical (lower-case) form if it is a valid registered name.

    A name is 1-32 ASCII letters, digits, ``.``, ``_`` or ``-``; case does not matter
    (``Ada`` and ``ada`` are one user); ``guest`` is the play-money login, never an account.
    """
    if not (1 <= len(name) <= MAX_USERNAME_LENGTH and all(c.isascii() and (c.isalnum() or c in "._-") for c in name)):
        raise AccountError(f"invalid user name {name!r}: use 1-{MAX_USERNAME_LENGTH} letters, digits, '.', '_' or '-'")
    name = canonical_username(name)
    if name == GUEST:
        raise AccountError(f"{GUEST} is the play-money login without a password; it cannot be a registered user")
    return name


@dataclass(frozen=True)
class User:
    """A registered user (or the guest, who has no password)."""

    name: str
    real_name: str
    roles: frozenset[str] = field(default_factory=frozenset)
    password_hash: str = ""

    @property
    def is_guest(self) -> bool:
        return self.name == GUEST and not self.password_hash

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


GUEST_USER = User(GUEST, "Guest", frozenset({"player"}))


def parse_users(lines: Iterable[str]) -> dict[str, User]:
    """Read the users file format: ``name:roles:hash:real name`` per line.

    Roles are comma-separated; ``#`` lines and blank lines are ignored. The
    real name is last so it may hold any character but a line break.
    """
    users = {}
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(":", 3)
        if len(fields) != 4:
            raise AccountError(f"line {number}: expected name:roles:hash:real name")
        name, roles, password_hash, real_name = fields
        try:
            name = check_username(name)
            if name in users:
                raise AccountError(f"user {name} is listed twice (names are case-insensitive)")
            users[name] = User(name, real_name, parse_roles(roles), password_hash)
        except AccountError as exc:
            raise AccountError(f"line {number}: {exc}") from None
    return users


def parse_roles(text: str) -> frozenset[str]:
    roles = frozenset(role.strip() for role in text.split(",") if role.strip())
    unknown = roles - ROLES
    if unknown:
        raise AccountError(f"unknown role {sorted(unknown)[0]!r}: roles are {', '.join(sorted(ROLES))}")
    return roles


def format_user(user: User) -> str:
    """One line of the users file for ``user``."""
    if "\n" in user.real_name or "\r" in user.real_name:
        raise AccountError("a real name cannot hold a line break")
    return f"{user.name}:{','.join(sorted(user.roles))}:{user.password_hash}:{user.real_name}"


class UserDirectory:
    """The users the daemon knows, with a constant-cost ``authenticate``.

    ``get(name)`` returns the user or None: from ``users`` (kept in memory)
    or, when ``lookup`` is given, from ``lookup(name)`` (a store's ``get_user``).
    Names are looked up in their canonical form, so case does not matter.

    Every check costs one scrypt at ``cost``, so the time of a refusal tells
    nothing about the name: an unknown name is checked against a dummy hash of
    that cost, and an account whose hash has another cost (an older default, a
    test's cheap hash) is checked against its own hash and then against the
    dummy too. With ``save`` (a store's ``put_user``), such a hash is replaced by
    one of ``cost`` at the account's next good login, so all converge.
    """

    def __init__(
        self,
        users: dict[str, User] | None = None,
        allow_guest: bool = True,
        lookup: Callable[[str], User | None] | None = None,
        save: Callable[[User], None] | None = None,
        cost: HashCost = DEFAULT_COST,
    ):
        # A fixed dict is only read after this, so it needs no lock.
        self._lookup = lookup if lookup is not None else dict(users or {}).get
        self._save = save
        self.allow_guest = allow_guest
        self.cost = cost
        self._dummy_hash = hash_password(secrets.token_urlsafe(16), cost.n, cost.r, cost.p)

    def get(self, name: str) -> User | None:
        """The registered user called ``name`` (in any case), or None."""
        return self._lookup(canonical_username(name))

    def hash(self, password: str) -> str:
        """A new hash of ``password`` at this directory's cost."""
        return hash_password(password, self.cost.n, self.cost.r, self.cost.p)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if ``password`` is right, else None; every name costs the same (see the class)."""
        user = self.get(name)
        if user is None or not user.password_hash:
            verify_password(password, self._dummy_hash)
            return None
        matched = verify_password(password, user.password_hash)
        if hash_cost(user.password_hash) == self.cost:
            return user if matched else None
        if not matched:
            verify_password(password, self._dummy_hash)  # pad to a full-cost check
            return None
        if self._save is not None:  # a good login with an old-cost hash: bring it to today's cost
            user = User(user.name, user.real_name, user.roles, self.hash(password))
            self._save(user)
        return user
