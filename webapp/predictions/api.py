"""The predictions app's REST adapters: POST /api/v1/projects/{id}/predict/ and /api/v1/models/{id}/predict/,
and POST /api/v1/models/{id}/publish/ (it loads the model as the serving cache does before anything changes)."""

import base64
import binascii
import os

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.core.api.errors import error_responses
from webapp.core.api.parsers import CappedJSONParser
from webapp.core.uploads import limit_upload
from webapp.experiments.api import TrainedModelSerializer
from webapp.experiments.selectors import model_for_user
from webapp.experiments.services import trained_model_publish

from . import selectors, services
from .errors import InputErrors
from .serving import model_cache
from .throttles import PredictRateThrottle

# --- body size caps ----------------------------------------------------------------------------


class PredictJSONParser(CappedJSONParser):
    """Base64 JSON bodies up to TL_PREDICT_MAX_BODY_BYTES (base64 inflates images by 4/3)."""

    limit_setting = "TL_PREDICT_MAX_BODY_BYTES"


# --- request and response shapes -----------------------------------------------------------------


_EXPLAIN_HELP = (
    "Add a Grad-CAM heatmap of where the model looked for its answer to each prediction (off by default). "
    "At most TL_EXPLAIN_MAX_IMAGES images (4 unless configured) per request ask for one; more is a 400."
)


class InstanceSerializer(serializers.Serializer):
    b64 = serializers.CharField(help_text="The image file's bytes (JPEG, PNG, GIF, BMP, WebP or TIFF), base64.")


class PredictJSONSerializer(serializers.Serializer):
    instances = InstanceSerializer(many=True, help_text="TensorFlow Serving's shape; answered in this order.")
    top_k = serializers.IntegerField(
        required=False, min_value=1, max_value=100, help_text="Keep only the k most probable classes per image."
    )
    explain = serializers.BooleanField(required=False, default=False, help_text=_EXPLAIN_HELP)


class PredictMultipartSerializer(serializers.Serializer):
    image = serializers.ListField(child=serializers.FileField(), help_text="Repeat the field for several images.")
    top_k = serializers.IntegerField(required=False, min_value=1, max_value=100)
    explain = serializers.BooleanField(required=False, default=False, help_text=_EXPLAIN_HELP + ' Send "true".')


class PredictedModelSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField()
    project = serializers.IntegerField()
    threshold = serializers.FloatField(
        allow_null=True, help_text="The model's confidence threshold (PATCH /api/v1/models/{id}/); null: none."
    )


class ExplanationSerializer(serializers.Serializer):
    layer = serializers.CharField(help_text="The convolutional layer the heatmap is taken from (e.g. block5_conv3).")
    png_base64 = serializers.CharField(
        help_text="A PNG, base64, at the model's input size: the image as the model saw it with the heatmap over it "
        "(dark blue: no evidence, through red to yellow: the most evidence for the predicted label)."
    )


class PredictionSerializer(serializers.Serializer):
    label = serializers.CharField(help_text="The most probable class.")
    confidence = serializers.FloatField(help_text="Its probability.")
    accepted = serializers.BooleanField(
        help_text="confidence >= the model's threshold (always true without one); when false, treat the "
        "answer as unknown."
    )
    probabilities = serializers.DictField(
        child=serializers.FloatField(), help_text="Class name -> probability, most probable first."
    )
    explanation = ExplanationSerializer(required=False, help_text="Only with explain=true.")


class PredictResponseSerializer(serializers.Serializer):
    model = PredictedModelSerializer()
    predictions = PredictionSerializer(many=True)


# --- parsing ---------------------------------------------------------------------------------


def _parse_top_k(raw, errors: list) -> int | None:
    if raw is None:
        return None
    limit = settings.TL_PREDICT_MAX_TOP_K
    try:
        value = int(raw) if not isinstance(raw, bool | float) else None
    except (TypeError, ValueError):
        value = None
    if value is None or not 1 <= value <= limit:
        errors.append({"field": "top_k", "message": f"top_k must be an integer from 1 to {limit}, got {raw!r}"})
        return None
    return value


_TRUE, _FALSE = ("true", "1", "on", "yes"), ("false", "0", "off", "no", "")


def _parse_explain(raw, errors: list) -> bool:
    if raw is None or isinstance(raw, bool):
        return bool(raw)
    if isinstance(raw, str) and raw.strip().lower() in _TRUE + _FALSE:
        return raw.strip().lower() in _TRUE
    errors.append({"field": "explain", "message": f"explain must be true or false, got {raw!r}"})
    return False


def _check_explain_count(explain: bool, count: int) -> None:
    limit = settings.TL_EXPLAIN_MAX_IMAGES
    if explain and count > limit:
        message = (
            f"explain=true is limited to {limit} images per request (TL_EXPLAIN_MAX_IMAGES), and {count} were sent: "
            "send fewer images, or leave explain off"
        )
        raise InputErrors([{"field": "explain", "message": message}])


def _json_inputs(data) -> tuple[list[tuple[str, bytes]], int | None, bool]:
    if not isinstance(data, dict):
        raise InputErrors(
            [{"field": None, "message": 'the JSON body must be an object: {"instances": [{"b64": "..."}]}'}]
        )
    errors = [
        {"field": key, "message": f"unknown field {key!r}; expected 'instances' and optionally 'top_k' and 'explain'"}
        for key in data
        if key not in ("instances", "top_k", "explain")
    ]
    top_k = _parse_top_k(data.get("top_k"), errors)
    explain = data.get("explain", False)
    if not isinstance(explain, bool):
        errors.append({"field": "explain", "message": f"explain must be true or false, got {explain!r}"})
        explain = False
    instances = data.get("instances", [])
    if not isinstance(instances, list):
        errors.append({"field": "instances", "message": 'instances must be a list of {"b64": "..."} objects'})
        instances = []
    inputs = []
    for index, item in enumerate(instances):
        name = f"instances[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("b64"), str):
            errors.append({"field": name, "index": index, "message": f'{name}: must be an object {{"b64": "..."}}'})
            continue
        unknown = sorted(set(item) - {"b64"})
        if unknown:
            errors.append(
                {"field": f"{name}.{unknown[0]}", "index": index, "message": f"{name}: unknown field {unknown[0]!r}"}
            )
            continue
        try:
            inputs.append((f"{name}.b64", base64.b64decode(item["b64"], validate=True)))
        except (binascii.Error, ValueError):
            errors.append({"field": f"{name}.b64", "index": index, "message": f"{name}.b64: not valid base64"})
    if errors:
        raise InputErrors(errors)
    _check_explain_count(explain, len(inputs))
    return inputs, top_k, explain


def _multipart_inputs(request) -> tuple[list[tuple[str, bytes]], int | None, bool]:
    errors = []
    for key in request.FILES:
        if key != "image":
            errors.append({"field": key, "message": f"unknown field {key!r}; send images as 'image' (repeatable)"})
    fields = request.POST if hasattr(request, "POST") else {}
    for key in fields:
        if key not in ("top_k", "explain"):
            errors.append(
                {"field": key, "message": f"unknown field {key!r}; expected 'image' files, 'top_k' and 'explain'"}
            )
    for key in ("top_k", "explain"):
        if len(fields.getlist(key) if key in fields else []) > 1:
            errors.append({"field": key, "message": f"{key} was sent more than once"})
    top_k = _parse_top_k(fields.get("top_k") if "top_k" in fields else None, errors)
    explain = _parse_explain(fields.get("explain") if "explain" in fields else None, errors)
    if errors:
        raise InputErrors(errors)
    inputs = []
    for index, upload in enumerate(request.FILES.getlist("image")):
        limit = settings.TL_PREDICT_MAX_IMAGE_BYTES
        # Read at most one byte past the limit: the check then says "too large" without reading it all.
        # The browser's file name goes into error messages so that users know which file was bad.
        label = f"image[{index}] ({os.path.basename(upload.name or '')[:100]})" if upload.name else f"image[{index}]"
        inputs.append((f"image[{index}]", upload.read(limit + 1), label))
    _check_explain_count(explain, len(inputs))
    return inputs, top_k, explain


def predict_inputs(request) -> tuple[list[tuple], int | None, bool]:
    """(field name, bytes[, label with the file name]) per image in input order, top_k and explain."""
    data = request.data
    if request.content_type.startswith("multipart/"):
        return _multipart_inputs(request)
    return _json_inputs(data)


# --- views -----------------------------------------------------------------------------------

_EXAMPLE = OpenApiExample(
    "One image",
    value={
        "model": {"id": 7, "version": 3, "project": 2, "threshold": 0.8},
        "predictions": [
            {"label": "cat", "confidence": 0.93, "accepted": True, "probabilities": {"cat": 0.93, "dog": 0.07}}
        ],
    },
    response_only=True,
)


def _predict_schema(summary: str, description: str, *, conflict: bool):
    codes = (400, 404, 411, 413, 415, 429, 503) + ((409,) if conflict else ())
    return extend_schema(
        summary=summary,
        description=description,
        request={
            "multipart/form-data": PredictMultipartSerializer,
            "application/json": PredictJSONSerializer,
        },
        responses={200: PredictResponseSerializer, **error_responses(*codes)},
        examples=[_EXAMPLE],
        tags=["predictions"],
    )


class _PredictView(APIView):
    # Multipart first: DRF parses the request's Content-Type once per parser it tries, and a multipart one
    # (with its boundary) is the slow kind to parse; the two types never both match, so the order picks
    # the same parser (issue 20, point 7).
    parser_classes = [MultiPartParser, PredictJSONParser]
    throttle_classes = [PredictRateThrottle]

    def initial(self, request, *args, **kwargs):
        # Before authentication: a signed-in browser's CSRF check already reads a multipart body.
        limit = settings.TL_PREDICT_MAX_BODY_BYTES
        limit_upload(request, limit=limit, setting="TL_PREDICT_MAX_BODY_BYTES", what="predict request")
        super().initial(request, *args, **kwargs)

    def _run(self, request, call) -> Response:
        inputs, top_k, explain = predict_inputs(request)
        call.image_count = len(inputs)
        with services.predict_work_slot():
            call.images = services.images_check(inputs=inputs, image_size=tuple(call.model.image_size))
            return Response(services.predict_images(model=call.model, images=call.images, top_k=top_k, explain=explain))


class ProjectPredictView(_PredictView):
    @_predict_schema(
        "Predict with the project's published model",
        "Answers 409 when the project has no published model. A newly published model serves the "
        "next request; requests already running finish on the model they started with.",
        conflict=True,
    )
    def post(self, request, project_id: int):
        project = selectors.project_for_predict(request.user, project_id)
        with services.prediction_logged(project=project) as call:
            call.model = selectors.published_model_for_project(project)
            return self._run(request, call)


class ModelPredictView(_PredictView):
    @_predict_schema("Predict with a given model", "Any of your trained models, published or not.", conflict=False)
    def post(self, request, model_id: int):
        model = model_for_user(request.user, model_id)
        with services.prediction_logged(project=model.project, model=model) as call:
            return self._run(request, call)


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
        model = trained_model_publish(model=model_for_user(request.user, model_id), load=model_cache().get)
        return Response(TrainedModelSerializer(model).data)
