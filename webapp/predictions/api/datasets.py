"""POST /api/v1/projects/{id}/datasets/ (multipart "archive" -> 202), GET DELETE /api/v1/datasets/{id}/ and
POST /api/v1/datasets/{id}/retry/."""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.core.uploads import limit_upload
from webapp.projects import selectors
from webapp.projects.datasets import dataset_create_from_archive, dataset_delete, dataset_retry
from webapp.projects.models import Dataset, DatasetClass

from .common import StrictSerializer
from .errors import error_responses


class DatasetClassSerializer(serializers.ModelSerializer):
    class Meta:
        model = DatasetClass
        fields = ["name", "train_count", "validation_count"]


class DatasetSerializer(serializers.ModelSerializer):
    classes = DatasetClassSerializer(many=True, read_only=True)
    report = serializers.JSONField(read_only=True, help_text="What ingest accepted, skipped and why.")
    stats = serializers.JSONField(read_only=True)

    class Meta:
        model = Dataset
        fields = [
            "id", "project", "version", "status", "source", "original_name", "progress",
            "classes", "stats", "report", "error", "created_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class DatasetUploadSerializer(StrictSerializer):
    archive = serializers.FileField(help_text="A zip of class folders (train/ and validation/ optional).")


class DatasetUploadView(APIView):
    parser_classes = [MultiPartParser]

    def initial(self, request, *args, **kwargs):
        # Before authentication: a signed-in browser's CSRF check already reads the multipart body.
        limit_upload(request, limit=settings.TL_MAX_UPLOAD_BYTES, setting="TL_MAX_UPLOAD_BYTES")
        super().initial(request, *args, **kwargs)

    @extend_schema(
        request={"multipart/form-data": DatasetUploadSerializer},
        responses={202: DatasetSerializer, **error_responses(400, 404, 411, 413, 415, 503)},
        description="Stores the archive and queues its ingest; poll GET /api/v1/datasets/{id}/ for the result.",
        tags=["datasets"],
    )
    def post(self, request, project_id: int):
        project = selectors.project_for_user(request.user, project_id)
        data = DatasetUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = dataset_create_from_archive(
            project=project, uploaded_file=data.validated_data["archive"], user=request.user
        )
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_202_ACCEPTED)


class DatasetDetailView(APIView):
    @extend_schema(responses={200: DatasetSerializer, **error_responses(404)}, tags=["datasets"])
    def get(self, request, dataset_id: int):
        return Response(DatasetSerializer(selectors.dataset_detail_for_user(request.user, dataset_id)).data)

    @extend_schema(
        responses={204: None, **error_responses(404, 409)},
        description="Deletes the version and all its files. 409, naming them, while experiments use it.",
        tags=["datasets"],
    )
    def delete(self, request, dataset_id: int):
        dataset_delete(dataset=selectors.dataset_for_user(request.user, dataset_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DatasetRetryView(APIView):
    @extend_schema(
        request=None,
        responses={202: DatasetSerializer, **error_responses(404, 409, 503)},
        description="Ingests a failed version again from its kept upload (status processing again). 409 when "
        "it is not failed or its upload was not kept (the reason says what to do instead); 503 when the "
        "job queue is down (the upload stays kept).",
        tags=["datasets"],
    )
    def post(self, request, dataset_id: int):
        dataset = dataset_retry(dataset=selectors.dataset_for_user(request.user, dataset_id))
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_202_ACCEPTED)
