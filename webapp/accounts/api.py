"""POST /api/v1/auth/token/ (username + password -> a new token) and /api/v1/auth/token/rotate/."""

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.core.addresses import client_address
from webapp.core.api.errors import error_responses
from webapp.core.errors import ServiceError
from webapp.core.signin_limits import SigninThrottled, signin_attempt_start

from .services import api_token_create, api_token_rotate


class SigninSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, trim_whitespace=False)
    password = serializers.CharField(trim_whitespace=False, style={"input_type": "password"})


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send it as `Authorization: Token <token>`. It is not shown again.")


class TokenObtainView(APIView):
    """A new API token for your username and password (each call creates another; your older
    tokens keep working, up to the newest 10)."""

    permission_classes = [AllowAny]
    # No session authentication: a password POST needs no CSRF token, and a cookie proves nothing here.
    authentication_classes: list = []
    # Password guessing is limited per account and per client address by signin_attempt_start,
    # which, unlike DRF's throttles, also refuses when its counters cannot be read.
    throttle_classes: list = []

    @extend_schema(
        request=SigninSerializer,
        responses={200: TokenSerializer, **error_responses(400, 415, 429, 503, auth=False)},
        auth=[],
        tags=["auth"],
    )
    def post(self, request):
        serializer = SigninSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        username, password = serializer.validated_data["username"], serializer.validated_data["password"]
        try:
            attempt = signin_attempt_start(username=username, address=client_address(request))
        except SigninThrottled as exc:
            throttled = exceptions.Throttled(detail=exc.message)  # the message already says when to retry
            throttled.wait = exc.retry_after  # DRF's handler turns it into Retry-After
            raise throttled from exc
        user = authenticate(request._request, username=username, password=password)
        if user is None:
            raise ServiceError(
                "No active account has this username and password (both are case-sensitive).", field="password"
            )
        attempt.succeeded()
        _, key = api_token_create(user=user)
        return Response({"token": key})


class TokenRotateView(APIView):
    """Revoke all your API tokens and get one new one; the old ones stop working at once."""

    @extend_schema(request=None, responses={201: TokenSerializer, **error_responses()}, tags=["auth"])
    def post(self, request):
        _, key = api_token_rotate(user=request.user)
        return Response({"token": key}, status=status.HTTP_201_CREATED)
