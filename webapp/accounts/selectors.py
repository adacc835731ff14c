"""Reads of API tokens: the one a request's key names, and a user's list for the account page."""

from .models import ApiToken
from .services import token_digest


def api_token_for_key(key: str) -> ApiToken | None:
    """The token whose key is `key`, with its user, or None."""
    return ApiToken.objects.select_related("user").filter(digest=token_digest(key)).first()


def api_tokens_of(user) -> list[ApiToken]:
    return list(ApiToken.objects.filter(user=user))
