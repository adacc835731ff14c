"""Reads of API tokens: the one a request's key names, and a user's list for the account page."""

from functools import cache

from django.contrib.auth import get_user_model
from django.db import connection

from .models import ApiToken
from .services import token_digest


@cache
def _user_by_token_sql() -> str:
    # Table and column names from the models, quoted; the digest is the only value, passed as a parameter.
    quote, user_model = connection.ops.quote_name, get_user_model()
    token_field = ApiToken._meta.get_field
    return (
        f"SELECT u.*, t.{quote(ApiToken._meta.pk.column)} AS {quote('_api_token_id')} "
        f"FROM {quote(user_model._meta.db_table)} u JOIN {quote(ApiToken._meta.db_table)} t "
        f"ON t.{quote(token_field('user').column)} = u.{quote(user_model._meta.pk.column)} "
        f"WHERE t.{quote(token_field('digest').column)} = %s"
    )


def api_token_for_key(key: str) -> ApiToken | None:
    """The token whose key is `key`, with its user, or None.

    Every token-authenticated API request asks this, so it is one raw query: the ORM's
    `select_related("user").get(digest=...)` spent three times as long building and compiling the
    query as running it (issue 20, point 7). The token comes back as `only("id", "user")` would
    load it: its other fields are read from the database if something asks for them.
    """
    for user in get_user_model().objects.raw(_user_by_token_sql(), [token_digest(key)]):
        token = ApiToken.from_db(user._state.db, ["id", "user_id"], [user._api_token_id, user.pk])
        del user._api_token_id
        token.user = user
        return token
    return None


def api_tokens_of(user) -> list[ApiToken]:
    return list(ApiToken.objects.filter(user=user))
