"""POST /api/v1/auth/token/ (username + password -> token) and /api/v1/auth/token/rotate/."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from ..throttles import AuthRateThrottle
from ..tokens import token_get_or_create, token_rotate
from .errors import error_responses


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send it as `Authorization: Token <token>`.")


class TokenObtainView(APIView):
    """Your API token (created on first use) for your username and password."""

    permission_classes = [AllowAny]
    # No session authentication: a password POST needs no CSRF token, and a cookie proves nothing here.
    authentication_classes: list = []
    throttle_classes = [AuthRateThrottle]

    @extend_schema(
        request=AuthTokenSerializer,
        responses={200: TokenSerializer, **error_responses(400, 415, 429, auth=False)},
        auth=[],
        tags=["auth"],
    )
    def post(self, request):
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        token = token_get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})


class TokenRotateView(APIView):
    """Replace your token with a new one; the old one stops working at once."""

    @extend_schema(request=None, responses={201: TokenSerializer, **error_responses()}, tags=["auth"])
    def post(self, request):
        token = token_rotate(user=request.user)
        return Response({"token": token.key}, status=status.HTTP_201_CREATED)
