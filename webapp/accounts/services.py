"""API tokens: random keys kept only as their SHA-256, shown to their owner once.

A key carries 256 random bits, so one unsalted SHA-256 is enough to make the stored digest useless
for signing in (nobody can search 2**256 keys); a slow password hash would only slow every request.
"""

import hashlib
import secrets

from django.db import transaction

from .models import ApiToken

# A user may hold this many keys (one per script or machine); creating one more revokes the oldest,
# so that calling POST /api/v1/auth/token/ in a loop cannot grow the table without end.
MAX_TOKENS_PER_USER = 10
PREFIX_LENGTH = 8


def token_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_token_create(*, user) -> tuple[ApiToken, str]:
    """A new token for `user` and its key, which is not stored anywhere and cannot be shown again."""
    key = secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(user=user, digest=token_digest(key), prefix=key[:PREFIX_LENGTH])
        stale = ApiToken.objects.filter(user=user).values_list("pk", flat=True)[MAX_TOKENS_PER_USER:]
        ApiToken.objects.filter(pk__in=list(stale)).delete()
    return token, key


def api_token_revoke(*, user, token_id: int) -> bool:
    """Delete `user`'s token `token_id`; False if `user` has no such token."""
    deleted, _ = ApiToken.objects.filter(user=user, pk=token_id).delete()
    return bool(deleted)


def api_token_rotate(*, user) -> tuple[ApiToken, str]:
    """Revoke every token of `user` and create one new one."""
    with transaction.atomic():
        ApiToken.objects.filter(user=user).delete()
        return api_token_create(user=user)
