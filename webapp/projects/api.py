"""The projects app's REST adapters: GET POST /api/v1/projects/, GET PATCH DELETE /api/v1/projects/{id}/,
GET /api/v1/projects/{id}/datasets/ (its versions), POST there (multipart "archive" -> 202),
GET DELETE /api/v1/datasets/{id}/,
POST /api/v1/datasets/{id}/retry/ and POST /api/v1/datasets/{id}/without-leaks/."""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.core.api.common import StrictBooleanField, StrictCharField, StrictLimitOffsetPagination, StrictSerializer
from webapp.core.api.errors import error_responses
from webapp.core.api.parsers import BoundedJSONParser
from webapp.core.uploads import limit_upload
from workers.ml.samples import SAMPLES

from . import selectors, services
from .datasets import (
    MAX_SAMPLE_PER_CLASS,
    dataset_create_from_archive,
    dataset_create_from_sample,
    dataset_delete,
    dataset_retry,
)
from .ingest.build import MAX_TEST_FRACTION
from .models import Dataset, DatasetClass, Project
from .without_leaks import dataset_create_without_leaks

# --- projects ----------------------------------------------------------------------------------


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


# --- datasets ----------------------------------------------------------------------------------


class DatasetClassSerializer(serializers.ModelSerializer):
    class Meta:
        model = DatasetClass
        fields = ["name", "train_count", "validation_count", "test_count"]


class DatasetSerializer(serializers.ModelSerializer):
    classes = DatasetClassSerializer(many=True, read_only=True)
    report = serializers.JSONField(read_only=True, help_text="What ingest accepted, skipped and why.")
    stats = serializers.JSONField(read_only=True)

    class Meta:
        model = Dataset
        fields = [
            "id", "project", "version", "status", "source", "original_name", "test_fraction", "progress",
            "classes", "stats", "report", "error", "created_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class DatasetUploadSerializer(StrictSerializer):
    archive = serializers.FileField(help_text="A zip of class folders (train/, validation/ and test/ optional).")
    test_fraction = serializers.FloatField(
        required=False,
        min_value=0.0,
        max_value=MAX_TEST_FRACTION,
        help_text="Without a test/ folder, this share of each class's training images becomes the test split "
        "(the default is the server's TL_TEST_FRACTION; 0: none).",
    )


class DatasetSampleSerializer(StrictSerializer):
    sample = serializers.ChoiceField(
        choices=list(SAMPLES),
        help_text="A Keras sample dataset (workers/ml/samples.py); its own test split becomes the test split.",
    )
    per_class = serializers.JSONField(
        required=False,
        default=100,
        help_text=f'Training images per class (1 to {MAX_SAMPLE_PER_CLASS}), or "all". Validation and test take a '
        "fifth as many.",
    )


class DatasetSummarySerializer(serializers.ModelSerializer):
    class_count = serializers.IntegerField(read_only=True)
    train_count = serializers.IntegerField(read_only=True, allow_null=True, help_text="Null until it is ingested.")
    validation_count = serializers.IntegerField(read_only=True, allow_null=True)
    test_count = serializers.IntegerField(read_only=True, allow_null=True)
    experiment_count = serializers.IntegerField(
        read_only=True, help_text="Experiments trained on this version; while any is left it cannot be deleted."
    )

    class Meta:
        model = Dataset
        fields = [
            "id", "version", "status", "source", "original_name", "progress", "class_count", "train_count",
            "validation_count", "test_count", "experiment_count", "error", "created_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class DatasetUploadView(GenericAPIView):
    """GET: the project's dataset versions; POST: upload a new one."""

    serializer_class = DatasetSummarySerializer
    parser_classes = [MultiPartParser, BoundedJSONParser]
    pagination_class = StrictLimitOffsetPagination

    def initial(self, request, *args, **kwargs):
        # Before authentication: a signed-in browser's CSRF check already reads the multipart body.
        limit_upload(request, limit=settings.TL_MAX_UPLOAD_BYTES, setting="TL_MAX_UPLOAD_BYTES")
        super().initial(request, *args, **kwargs)

    @extend_schema(
        responses={200: DatasetSummarySerializer(many=True), **error_responses(400, 404)},
        description="The project's dataset versions, newest first, with status, counts and dates.",
        tags=["datasets"],
    )
    def get(self, request, project_id: int):
        project = selectors.project_for_user(request.user, project_id)
        page = self.paginate_queryset(selectors.datasets_for_project(project))
        return self.get_paginated_response(DatasetSummarySerializer(page, many=True).data)

    @extend_schema(
        request={"multipart/form-data": DatasetUploadSerializer, "application/json": DatasetSampleSerializer},
        responses={202: DatasetSerializer, **error_responses(400, 404, 411, 413, 415, 503)},
        description=(
            'multipart: stores the archive and queues its ingest. JSON {"sample": "cifar10", "per_class": 500}: '
            "a worker loads that Keras sample (downloaded once into Keras's cache) and ingests it. Poll "
            "GET /api/v1/datasets/{id}/ for the result."
        ),
        tags=["datasets"],
    )
    def post(self, request, project_id: int):
        project = selectors.project_for_user(request.user, project_id)
        if request.content_type.startswith("application/json"):
            sample = DatasetSampleSerializer(data=request.data)
            sample.is_valid(raise_exception=True)
            dataset = dataset_create_from_sample(project=project, user=request.user, **sample.validated_data)
            return Response(DatasetSerializer(dataset).data, status=status.HTTP_202_ACCEPTED)
        data = DatasetUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = dataset_create_from_archive(
            project=project,
            uploaded_file=data.validated_data["archive"],
            user=request.user,
            test_fraction=data.validated_data.get("test_fraction"),
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


class DatasetWithoutLeaksView(APIView):
    @extend_schema(
        request=None,
        responses={202: DatasetSerializer, **error_responses(404, 409, 503)},
        description="Makes the project's next version from this one's stored files without its leaked images: "
        "the validation and test copies of every picture that is in more than one split (identical or near "
        "copies; the training copy is kept). Answers 202 with the new version (processing; its report notes "
        "what it was made from). 409 when this version is not ready or has no leaked images; 503 when the "
        "job queue is down.",
        tags=["datasets"],
    )
    def post(self, request, dataset_id: int):
        dataset = selectors.dataset_for_user(request.user, dataset_id)
        new = dataset_create_without_leaks(dataset=dataset, user=request.user)
        return Response(DatasetSerializer(new).data, status=status.HTTP_202_ACCEPTED)
