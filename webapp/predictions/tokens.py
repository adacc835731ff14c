"""API tokens (DRF's authtoken: one per user)."""

from django.db import transaction
from rest_framework.authtoken.models import Token


def token_get_or_create(*, user) -> Token:
    token, _ = Token.objects.get_or_create(user=user)
    return token


def token_rotate(*, user) -> Token:
    """A new token for `user`; the old one no longer authenticates."""
    with transaction.atomic():
        Token.objects.filter(user=user).delete()
        return Token.objects.create(user=user)
