"""GET POST /api/v1/projects/ and GET PATCH DELETE /api/v1/projects/{id}/."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from webapp.projects import selectors, services
from webapp.projects.models import Project

from .common import StrictBooleanField, StrictCharField, StrictLimitOffsetPagination, StrictSerializer
from .errors import error_responses
from .parsers import BoundedJSONParser


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "description", "store_predictions", "created_at", "updated_at"]
        read_only_fields = fields


class ProjectCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=120)
    description = StrictCharField(required=False, allow_blank=True, default="")


class ProjectUpdateSerializer(StrictSerializer):
    name = StrictCharField(max_length=120, required=False)
    description = StrictCharField(required=False, allow_blank=True)
    store_predictions = StrictBooleanField(
        required=False, help_text="Keep the images sent to the predict endpoints (off by default)."
    )


class ProjectListView(GenericAPIView):
    serializer_class = ProjectSerializer
    parser_classes = [BoundedJSONParser]
    pagination_class = StrictLimitOffsetPagination

    def get_queryset(self):
        return selectors.projects_for_user(self.request.user)

    @extend_schema(responses={200: ProjectSerializer(many=True), **error_responses(400)}, tags=["projects"])
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ProjectSerializer(page, many=True).data)

    @extend_schema(
        request=ProjectCreateSerializer,
        responses={201: ProjectSerializer, **error_responses(400, 415)},
        tags=["projects"],
    )
    def post(self, request):
        data = ProjectCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_create(owner=request.user, **data.validated_data)
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailView(GenericAPIView):
    serializer_class = ProjectSerializer
    parser_classes = [BoundedJSONParser]

    @extend_schema(responses={200: ProjectSerializer, **error_responses(404)}, tags=["projects"])
    def get(self, request, project_id: int):
        return Response(ProjectSerializer(selectors.project_for_user(request.user, project_id)).data)

    @extend_schema(
        request=ProjectUpdateSerializer,
        responses={200: ProjectSerializer, **error_responses(400, 404, 415)},
        tags=["projects"],
    )
    def patch(self, request, project_id: int):
        project = selectors.project_for_user(request.user, project_id)
        data = ProjectUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_update(project=project, **data.validated_data)
        return Response(ProjectSerializer(project).data)

    @extend_schema(responses={204: None, **error_responses(404)}, tags=["projects"])
    def delete(self, request, project_id: int):
        services.project_delete(project=selectors.project_for_user(request.user, project_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
