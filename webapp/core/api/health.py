from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.core.health import health_report
from webapp.core.redact import without_server_paths

_part = inline_serializer("HealthPart", {"ok": serializers.BooleanField(), "detail": serializers.CharField()})
_workers = inline_serializer(
    "HealthWorkers",
    {
        "ok": serializers.BooleanField(),
        "count": serializers.IntegerField(allow_null=True),
        "hostnames": serializers.ListField(child=serializers.CharField()),
        "detail": serializers.CharField(),
    },
)
_health = inline_serializer(
    "Health",
    {
        "status": serializers.ChoiceField(["ok", "degraded", "down"]),
        "database": _part,
        "broker": _part,
        "storage": _part,
        "workers": _workers,
    },
)


class HealthView(APIView):
    """Database, broker, storage and live workers. 503 when the database, the broker or the storage is down."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(responses={200: _health, 503: _health}, auth=[])
    def get(self, request):
        report = health_report()
        # Anyone may ask: an unreachable database file or Redis socket must not show its server path.
        for part in ("database", "broker", "storage", "workers"):
            report[part]["detail"] = without_server_paths(report[part]["detail"])
        status = 200 if all(report[part]["ok"] for part in ("database", "broker", "storage")) else 503
        return Response(report, status=status)
