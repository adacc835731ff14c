"""GET /api/v1/projects/{id}/models/ and POST /api/v1/models/{id}/publish/."""

import logging

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.experiments import selectors
from webapp.experiments.models import TrainedModel
from webapp.experiments.services import trained_model_publish
from webapp.projects.selectors import project_for_user

from ..serving import model_cache
from .common import StrictLimitOffsetPagination
from .errors import error_responses

log = logging.getLogger(__name__)


class TrainedModelSerializer(serializers.ModelSerializer):
    class_names = serializers.ListField(child=serializers.CharField(), read_only=True)
    image_size = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    metrics = serializers.JSONField(read_only=True)

    class Meta:
        model = TrainedModel
        fields = [
            "id", "project", "experiment", "version", "backbone", "class_names", "image_size",
            "metrics", "size_bytes", "published", "published_at", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class ModelListView(GenericAPIView):
    serializer_class = TrainedModelSerializer
    pagination_class = StrictLimitOffsetPagination

    @extend_schema(responses={200: TrainedModelSerializer(many=True), **error_responses(400, 404)}, tags=["models"])
    def get(self, request, project_id: int):
        project = project_for_user(request.user, project_id)
        page = self.paginate_queryset(selectors.models_for_project(project))
        return self.get_paginated_response(TrainedModelSerializer(page, many=True).data)


class ModelPublishView(APIView):
    @extend_schema(
        request=None,
        responses={200: TrainedModelSerializer, **error_responses(404, 409)},
        description="The project's predict endpoint serves this model from the next request on. "
        "The model is loaded as serving loads it (checksum, safe mode) before anything changes: a model "
        "that cannot be loaded answers 409 with the cause, and the previously published model keeps serving.",
        tags=["models"],
    )
    def post(self, request, model_id: int):
        model = trained_model_publish(model=selectors.model_for_user(request.user, model_id), load=model_cache().get)
        return Response(TrainedModelSerializer(model).data)
