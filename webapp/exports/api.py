"""The exports app's REST adapters: POST GET /api/v1/models/{id}/exports/, GET /api/v1/exports/{id}/ and
GET /api/v1/exports/{id}/download/ (the bundle, to its owner only)."""

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.core.api.common import StrictSerializer
from webapp.core.api.errors import error_responses
from webapp.core.api.parsers import BoundedJSONParser
from webapp.experiments.selectors import model_for_user

from . import selectors, services
from .models import ModelExport


class VerificationSerializer(serializers.Serializer):
    n = serializers.IntegerField(help_text="Validation images run through both the export and the Keras model.")
    max_abs_diff = serializers.FloatField(help_text="Largest absolute difference of any class probability.")
    top1_agreement = serializers.FloatField(help_text="Share of images whose most probable class is the same.")


class ModelExportSerializer(serializers.ModelSerializer):
    verification = serializers.SerializerMethodField(
        help_text="The export against the Keras model on the validation images; null until measured. Float "
        "formats pass with 100% agreement and a difference of at most 1e-4, int8 with at least 99% agreement."
    )
    download_url = serializers.SerializerMethodField(help_text="Where the bundle downloads from; null until ready.")

    class Meta:
        model = ModelExport
        fields = [
            "id", "model", "format", "status", "size_bytes", "verification", "latency_ms", "runtime", "error",
            "download_url", "created_at", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields
        extra_kwargs = {
            "size_bytes": {"help_text": "Size of the download (bundle.zip) in bytes; null until ready."},
            "latency_ms": {"help_text": "Milliseconds per image in the export's runtime, on the worker that built it."},
            "error": {"help_text": "Why it failed: the converter's reason, or the figures against the bar."},
        }

    @extend_schema_field(VerificationSerializer(allow_null=True))
    def get_verification(self, export) -> dict | None:
        return export.verification or None

    def get_download_url(self, export) -> str | None:
        if export.status != ModelExport.Status.READY:
            return None
        return f"/api/v1/exports/{export.pk}/download/"


class ExportRequestSerializer(StrictSerializer):
    format = serializers.ChoiceField(ModelExport.Format.values, help_text="The format to export the model to.")


class ModelExportListView(APIView):
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        responses={200: ModelExportSerializer(many=True), **error_responses(404)},
        description="The model's exports, one per format asked for so far.",
        tags=["exports"],
    )
    def get(self, request, model_id: int):
        model = model_for_user(request.user, model_id)
        return Response(ModelExportSerializer(selectors.exports_for_model(model), many=True).data)

    @extend_schema(
        request=ExportRequestSerializer,
        responses={
            202: OpenApiResponse(ModelExportSerializer, description="Queued: poll GET /api/v1/exports/{id}/."),
            200: OpenApiResponse(ModelExportSerializer, description="Already queued, running or ready (cached)."),
            **error_responses(400, 404, 415, 503),
        },
        description="Export the model to a format, verified in its own runtime on the validation images before "
        "it is offered. Exports are cached per model and format: asking again returns the same export, and "
        "runs it again only if it failed.",
        tags=["exports"],
    )
    def post(self, request, model_id: int):
        model = model_for_user(request.user, model_id)
        data = ExportRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        export, queued = services.model_export_request(model=model, fmt=data.validated_data["format"])
        return Response(
            ModelExportSerializer(export).data, status=status.HTTP_202_ACCEPTED if queued else status.HTTP_200_OK
        )


class ModelExportDetailView(APIView):
    @extend_schema(responses={200: ModelExportSerializer, **error_responses(404)}, tags=["exports"])
    def get(self, request, export_id: int):
        return Response(ModelExportSerializer(selectors.export_for_user(request.user, export_id)).data)


class ModelExportDownloadView(APIView):
    @extend_schema(
        responses={
            (200, "application/zip"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="A zip: the model file(s), model_card.json, README.md, predict.py and "
                "transferlab_decode.py (run `python predict.py IMAGE...` inside it).",
            ),
            **error_responses(404, 409),
        },
        description="409 while the export is not ready.",
        tags=["exports"],
    )
    def get(self, request, export_id: int):
        export = selectors.export_for_user(request.user, export_id)
        stream, size = services.model_export_bundle(export=export)
        response = FileResponse(
            stream, as_attachment=True, filename=services.export_download_name(export), content_type="application/zip"
        )
        response["Content-Length"] = size
        return response
