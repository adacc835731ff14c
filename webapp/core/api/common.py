"""Shared pieces of the API views: strict JSON types, strict paging, exact number ranges in the schema.

DRF coerces by default (0 becomes "0", "5" becomes 5, an unreadable ?offset= is ignored); the schema
promises types, so a value of another type is refused with 400 naming the field.
"""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination


class StrictSerializer(serializers.Serializer):
    """Rejects keys it does not know, naming them, instead of silently ignoring a typo."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {key: [f"unknown field {key!r}; expected one of {', '.join(self.fields)}"] for key in unknown}
                )
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


def number_range(lo=None, hi=None, *, lo_open=False, hi_open=False, nullable=False, help_text=""):
    """A JSON number field whose schema states open or closed bounds exactly; the bounds are the
    documentation of a check that the service (or the config validator) makes."""
    schema = {"type": "number"}
    if lo is not None:
        schema.update({"minimum": lo, **({"exclusiveMinimum": True} if lo_open else {})})
    if hi is not None:
        schema.update({"maximum": hi, **({"exclusiveMaximum": True} if hi_open else {})})
    if nullable:
        schema["nullable"] = True
    if help_text:
        schema["description"] = help_text
    ranged = extend_schema_field(schema)(type("RangedFloatField", (StrictFloatField,), {}))
    return ranged(required=False, allow_null=nullable)


def documented_json(schema: dict):
    """An optional JSON value checked elsewhere (the config validator), documented as `schema`."""
    field = extend_schema_field(schema)(type("DocumentedJSONField", (serializers.JSONField,), {}))
    return field(required=False)


class StrictLimitOffsetPagination(LimitOffsetPagination):
    """limit/offset must be non-negative integers when given (DRF would silently use the default)."""

    max_limit = 500

    def _param(self, request, name):
        raw = request.query_params.getlist(name)
        if not raw:
            return None
        if len(raw) > 1 or not raw[0].isdigit():
            raise ValidationError({name: [f"{name} must be one non-negative integer, got {', '.join(raw)!r}"]})
        return int(raw[0])

    def get_limit(self, request):
        value = self._param(request, self.limit_query_param)
        if value is None:
            return self.default_limit
        if value == 0:
            raise ValidationError({self.limit_query_param: ["limit must be at least 1"]})
        return min(value, self.max_limit)

    def get_offset(self, request):
        return self._param(request, self.offset_query_param) or 0

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.limit_query_param,
                "required": False,
                "in": "query",
                "description": f"Page size, 1 to {self.max_limit} (larger values are capped).",
                "schema": {"type": "integer", "minimum": 1},
            },
            {
                "name": self.offset_query_param,
                "required": False,
                "in": "query",
                "description": "How many items to skip.",
                "schema": {"type": "integer", "minimum": 0},
            },
        ]
