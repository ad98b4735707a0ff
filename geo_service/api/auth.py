"""Access tokens: who may see restricted rows precisely.

The operator gives tokens to people (``riskmap token add --role analyst``); the service keeps
only their SHA-256 digests, from a file (``RISKMAP_TOKENS_FILE``) or the environment
(``RISKMAP_TOKENS``). A caller sends ``Authorization: Bearer <token>``. The presented token's
digest is compared with every configured digest in constant time, so the time taken says
nothing about how close a guess was; a token is never logged, echoed in an error or kept.
No token exists until the operator makes one: by default every caller is anonymous.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from geo_service.errors import RiskMapError
from geo_service.store.base import Access

PREFIX = "sha256:"
#: ``sha256:<64 hex> <role> [label…]``, one per line; ``#`` starts a comment.
LINE = re.compile(r"^sha256:(?P<digest>[0-9a-f]{64})\s+(?P<role>\w+)(?:\s+(?P<label>.*))?$")
ENV_ENTRY = re.compile(r"^(?P<role>\w+):sha256:(?P<digest>[0-9a-f]{64})$")
ROLES = {a.value: a for a in Access if a is not Access.anonymous}


class TokenError(RiskMapError):
    """A token file or setting that cannot be read; the message says which line."""


class UnauthorizedError(RiskMapError):
    """A request carried credentials that are not a valid token (401)."""


@dataclass(frozen=True)
class Token:
    """One configured token: its digest, role and the operator's label for it."""

    digest: bytes
    role: Access
    label: str = ""


def digest(token: str) -> bytes:
    """The SHA-256 digest of a token (tokens are random and long: no salt or stretching needed)."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def _role(name: str, where: str) -> Access:
    role = ROLES.get(name)
    if role is None:
        raise TokenError(f"{where}: unknown role {name!r}; roles are {', '.join(ROLES)}")
    return role


def read_tokens(path: Path | None, entries: tuple[str, ...] = ()) -> list[Token]:
    """Tokens from a file and from environment entries (``role:sha256:<hex>``)."""
    tokens: list[Token] = []
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise TokenError(f"{path}: cannot read the tokens file ({exc.strerror})") from exc
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            m = LINE.match(line)
            if m is None:
                raise TokenError(
                    f"{path}, line {number}: expected 'sha256:<64 hex digits> <role> [label]'"
                )
            role = _role(m["role"], f"{path}, line {number}")
            tokens.append(Token(bytes.fromhex(m["digest"]), role, (m["label"] or "").strip()))
    for i, entry in enumerate(entries, 1):
        m = ENV_ENTRY.match(entry.strip())
        if m is None:
            raise TokenError(f"RISKMAP_TOKENS entry {i}: expected '<role>:sha256:<64 hex digits>'")
        tokens.append(
            Token(bytes.fromhex(m["digest"]), _role(m["role"], f"RISKMAP_TOKENS entry {i}"))
        )
    return tokens


def new_token() -> str:
    """A fresh token: 32 random bytes, URL-safe."""
    return secrets.token_urlsafe(32)


def file_line(token: str, role: Access, label: str = "") -> str:
    """The tokens-file line that lets ``token`` in with ``role``."""
    return f"{PREFIX}{digest(token).hex()} {role.value}" + (f" {label}" if label else "")


class Tokens:
    """The configured tokens, answering who a request's credentials belong to."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens

    def access(self, authorization: str | None) -> Access:
        """The caller's access level: anonymous without credentials, else the token's role.

        Credentials that are present but not a valid bearer token are refused rather than
        taken as anonymous, so a client with a mistyped token learns it at once.
        """
        if authorization is None:
            return Access.anonymous
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise UnauthorizedError("expected 'Authorization: Bearer <token>'")
        presented = digest(credential)
        found = Access.anonymous
        for token in self.tokens:  # every digest is compared: no early exit to time
            if hmac.compare_digest(presented, token.digest):
                found = token.role
        if found is Access.anonymous:
            raise UnauthorizedError("the token is not valid for this service")
        return found
