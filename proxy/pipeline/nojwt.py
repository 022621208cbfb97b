"""JWT auth switched off, apart from ``proxy.pipeline.jwt``: that module loads PyJWT and cryptography
(about 10 MB per worker), which a gateway without ``enable_jwt_auth`` never needs (docs/performance.md)."""
from __future__ import annotations

from typing import NoReturn


class NoJwtAuth:
    """JWT auth switched off: no bearer token is taken for a JWT, every one goes to the key path."""

    def handles(self, raw: str) -> bool:
        return False

    async def authenticate(self, raw: str) -> NoReturn:
        raise AssertionError("JWT auth is off; handles() said no")
