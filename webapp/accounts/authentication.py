"""`Authorization: Token <key>` against the hashed keys of webapp/accounts/services.py."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from .selectors import api_token_for_key

KEYWORD = "Token"


class ApiTokenAuthentication(BaseAuthentication):
    """The user whose API token is in the Authorization header; `request.auth` is the ApiToken."""

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != KEYWORD.lower().encode():
            return None  # another scheme, or none: let the next authentication class try
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                f"The Authorization header must be '{KEYWORD} <key>' with one key and no spaces "
                f"(it has {len(parts) - 1} words after '{KEYWORD}')."
            )
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The API token in the Authorization header is not ASCII.") from None
        token = api_token_for_key(key)
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed(
                "The API token in the Authorization header is not valid: it was revoked or mistyped, "
                "or its user is inactive."
            )
        return token.user, token

    def authenticate_header(self, request):
        return KEYWORD


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Describes ApiTokenAuthentication in the OpenAPI schema (as drf-spectacular does DRF's own)."""

    target_class = ApiTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix=KEYWORD)
