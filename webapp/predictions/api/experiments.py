"""Experiments: GET POST /api/v1/projects/{id}/experiments/, GET /api/v1/experiments/{id}/,
POST /api/v1/experiments/{id}/cancel/ and /retry/."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.core.errors import Conflict, ServiceError
from webapp.experiments import selectors, services
from webapp.experiments.models import Experiment
from webapp.projects.models import Dataset
from webapp.projects.selectors import project_for_user
from workers.ml.config import BACKBONE_SPECS, FILL_MODES, MODES, OPTIMIZERS, POOLINGS

from .common import (
    StrictCharField,
    StrictIntegerField,
    StrictLimitOffsetPagination,
    StrictSerializer,
    documented_json,
    number_range,
)
from .errors import error_responses
from .parsers import BoundedJSONParser
from .trained_models import TrainedModelSerializer

# --- the request body: DESIGN §5, documented here, validated by the engine's parse_config ------


_INT_OR_PAIR = {
    "oneOf": [
        {"type": "integer", "minimum": 32, "maximum": 1024},
        {"type": "array", "items": {"type": "integer", "minimum": 32, "maximum": 1024}, "minItems": 2, "maxItems": 2},
    ],
    "description": "[height, width] in pixels, or one number for a square.",
}
_ZOOM = {
    "oneOf": [
        {"type": "number", "minimum": 0, "maximum": 1, "exclusiveMaximum": True},
        {"type": "array", "items": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 10},
         "minItems": 2, "maxItems": 2},
    ],
    "description": "Scale range [1-z, 1+z], or [low, high].",
}  # fmt: skip
_BLOCKS = {
    "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    "description": 'Conv blocks fine-tuning trains, e.g. "block5" or ["block4", "block5"].',
}


class HeadSerializer(serializers.Serializer):
    units = serializers.IntegerField(required=False, min_value=1, max_value=8192)
    dropout = number_range(0, 1, hi_open=True)
    pooling = serializers.ChoiceField(POOLINGS, required=False)
    normalize = serializers.BooleanField(required=False, help_text="Standardise backbone features first.")


class EarlyStoppingSerializer(serializers.Serializer):
    patience = serializers.IntegerField(required=False, min_value=1, max_value=1000, allow_null=True)


class AugmentationSerializer(serializers.Serializer):
    """ImageDataGenerator's option names and units; random transforms need finetune or scratch mode."""

    rotation_range = number_range(0, 360, help_text="Degrees.")
    width_shift_range = number_range(0, 1, hi_open=True, help_text="Fraction of the width.")
    height_shift_range = number_range(0, 1, hi_open=True, help_text="Fraction of the height.")
    shear_range = number_range(0, 80, help_text="Degrees.")
    zoom_range = documented_json(_ZOOM)
    channel_shift_range = number_range(0, 255)
    fill_mode = serializers.ChoiceField(FILL_MODES, required=False)
    cval = number_range(-1e6, 1e6)
    horizontal_flip = serializers.BooleanField(required=False)
    vertical_flip = serializers.BooleanField(required=False)
    rescale = number_range(-1e6, 1e6, nullable=True, help_text="Not 0. Scratch mode only.")
    featurewise_center = serializers.BooleanField(required=False)
    featurewise_std_normalization = serializers.BooleanField(required=False)
    samplewise_center = serializers.BooleanField(required=False)
    samplewise_std_normalization = serializers.BooleanField(required=False)


class ExperimentCreateSerializer(serializers.Serializer):
    """Documents the body; `parse_config` (workers.ml.config) is what validates it."""

    dataset = serializers.IntegerField(help_text="A ready dataset of this project.")
    name = serializers.CharField(required=False, max_length=120, help_text="Defaults to the mode and dataset.")
    notes = serializers.CharField(required=False, allow_blank=True)
    mode = serializers.ChoiceField(MODES)
    backbone = serializers.ChoiceField(tuple(BACKBONE_SPECS), required=False)
    weights = serializers.ChoiceField(["imagenet", "none"], required=False)
    image_size = documented_json(_INT_OR_PAIR)
    epochs = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    batch_size = serializers.IntegerField(required=False, min_value=1, max_value=1024)
    learning_rate = number_range(0, 1, lo_open=True)
    optimizer = serializers.ChoiceField(OPTIMIZERS, required=False)
    momentum = number_range(0, 1, hi_open=True, help_text="SGD only.")
    seed = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    head = HeadSerializer(required=False)
    unfreeze = documented_json(_BLOCKS)
    early_stopping = EarlyStoppingSerializer(required=False)
    augmentation = AugmentationSerializer(required=False)
    base_experiment = serializers.IntegerField(
        required=False, allow_null=True, help_text="Finetune mode: a succeeded bottleneck experiment."
    )


class _ExperimentFields(StrictSerializer):
    """The keys that are not config; everything else is handed to the config validator as is."""

    dataset = StrictIntegerField()
    name = StrictCharField(required=False, max_length=120)
    notes = StrictCharField(required=False, allow_blank=True)


# --- responses ---------------------------------------------------------------------------------


class EpochSerializer(serializers.Serializer):
    epoch = serializers.IntegerField()
    loss = serializers.FloatField(allow_null=True)
    accuracy = serializers.FloatField(allow_null=True)
    val_loss = serializers.FloatField(allow_null=True)
    val_accuracy = serializers.FloatField(allow_null=True)


class ClassMetricsSerializer(serializers.Serializer):
    precision = serializers.FloatField()
    recall = serializers.FloatField()
    f1 = serializers.FloatField()
    support = serializers.IntegerField()


class EvaluationSerializer(serializers.Serializer):
    accuracy = serializers.FloatField()
    labels = serializers.ListField(child=serializers.CharField())
    confusion_matrix = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()), help_text="Rows: true class; columns: predicted."
    )
    per_class = serializers.DictField(child=ClassMetricsSerializer())
    confident_mistakes = serializers.ListField(child=serializers.DictField(), required=False)


class VersusBaseSerializer(serializers.Serializer):
    base_model = serializers.IntegerField(allow_null=True, help_text="The model the fine-tune started from.")
    base_accuracy = serializers.FloatField(help_text="The base model on the same validation images, before epoch 1.")
    accuracy = serializers.FloatField()
    points = serializers.FloatField(help_text="accuracy - base_accuracy, in percentage points.")
    improved = serializers.BooleanField()
    summary = serializers.CharField()


class ExperimentSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    mode = serializers.CharField()
    backbone = serializers.CharField()
    dataset = serializers.IntegerField(source="dataset_id")
    created_at = serializers.DateTimeField()
    status = serializers.CharField(source="latest_status", allow_null=True)
    progress = serializers.FloatField(source="latest_progress", allow_null=True)
    best_val_accuracy = serializers.FloatField(allow_null=True)


class ExperimentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.IntegerField()
    dataset = serializers.IntegerField()
    name = serializers.CharField()
    notes = serializers.CharField()
    mode = serializers.CharField()
    backbone = serializers.CharField()
    config = serializers.JSONField(help_text="The validated config, defaults filled in.")
    base_experiment = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    job = serializers.IntegerField(allow_null=True, help_text="The latest training job.")
    status = serializers.ChoiceField(["queued", "running", "succeeded", "failed", "cancelled"], allow_null=True)
    progress = serializers.FloatField()
    epoch = serializers.IntegerField()
    epochs = serializers.IntegerField()
    history = EpochSerializer(many=True)
    evaluation = EvaluationSerializer(allow_null=True)
    versus_base = VersusBaseSerializer(allow_null=True, help_text="Fine-tunes only: the result against its base model.")
    model = TrainedModelSerializer(allow_null=True)
    error = serializers.CharField()


def experiment_body(experiment: Experiment) -> dict:
    job = selectors.latest_job(experiment)
    model = getattr(job, "model", None) if job else None
    return {
        "id": experiment.pk,
        "project": experiment.project_id,
        "dataset": experiment.dataset_id,
        "name": experiment.name,
        "notes": experiment.notes,
        "mode": experiment.mode,
        "backbone": experiment.backbone,
        "config": experiment.config,
        "base_experiment": experiment.base_experiment_id,
        "created_at": experiment.created_at,
        "job": job.pk if job else None,
        "status": job.status if job else None,
        "progress": job.progress if job else 0.0,
        "epoch": job.epoch if job else 0,
        "epochs": job.epochs if job else 0,
        "history": selectors.job_history(job) if job else [],
        "evaluation": (job.result or {}).get("evaluation") if job else None,
        "versus_base": selectors.versus_base(job),
        "model": model,
        "error": job.error if job else "",
    }


def _response(experiment: Experiment, status_code: int = 200) -> Response:
    return Response(ExperimentSerializer(experiment_body(experiment)).data, status=status_code)


# --- views -------------------------------------------------------------------------------------


class ExperimentListView(GenericAPIView):
    serializer_class = ExperimentSummarySerializer
    parser_classes = [BoundedJSONParser]
    pagination_class = StrictLimitOffsetPagination

    @extend_schema(
        responses={200: ExperimentSummarySerializer(many=True), **error_responses(400, 404)}, tags=["experiments"]
    )
    def get(self, request, project_id: int):
        project = project_for_user(request.user, project_id)
        page = self.paginate_queryset(selectors.experiments_for_project(project))
        return self.get_paginated_response(ExperimentSummarySerializer(page, many=True).data)

    @extend_schema(
        request=ExperimentCreateSerializer,
        responses={201: ExperimentSerializer, **error_responses(400, 404, 409, 415, 503)},
        description="The body is an experiment config (DESIGN §5) plus `dataset`, `name` and `notes`. "
        "Unknown keys and out-of-range values answer 400 naming the key. The first training job is queued.",
        tags=["experiments"],
    )
    def post(self, request, project_id: int):
        project = project_for_user(request.user, project_id)
        if not isinstance(request.data, dict):
            raise ServiceError("The body must be a JSON object: an experiment config plus 'dataset'.")
        config = {k: v for k, v in request.data.items() if k not in ("dataset", "name", "notes")}
        fields = _ExperimentFields(data={k: v for k, v in request.data.items() if k in ("dataset", "name", "notes")})
        fields.is_valid(raise_exception=True)
        dataset = Dataset.objects.filter(pk=fields.validated_data["dataset"], project=project).first()
        if dataset is None:
            raise ServiceError(f"This project has no dataset {fields.validated_data['dataset']}.", field="dataset")
        name = fields.validated_data.get("name") or f"{config.get('mode', 'experiment')} on dataset v{dataset.version}"
        experiment = services.experiment_create(
            project=project,
            dataset=dataset,
            config=config,
            name=name,
            notes=fields.validated_data.get("notes", ""),
            user=request.user,
        )
        return _response(experiment, status.HTTP_201_CREATED)


class ExperimentDetailView(APIView):
    @extend_schema(responses={200: ExperimentSerializer, **error_responses(404)}, tags=["experiments"])
    def get(self, request, experiment_id: int):
        return _response(selectors.experiment_for_user(request.user, experiment_id))


class ExperimentCancelView(APIView):
    @extend_schema(
        request=None,
        responses={200: ExperimentSerializer, **error_responses(404, 409)},
        description="A queued job never starts; a running one stops within a batch (status stays running "
        "until it does). 409 when the latest job already ended.",
        tags=["experiments"],
    )
    def post(self, request, experiment_id: int):
        experiment = selectors.experiment_for_user(request.user, experiment_id)
        job = selectors.latest_job(experiment)
        if job is None:
            raise Conflict("This experiment has no job to cancel.")
        services.training_job_cancel(job=job)
        return _response(experiment)


class ExperimentRetryView(APIView):
    @extend_schema(
        request=None,
        responses={201: ExperimentSerializer, **error_responses(404, 409, 503)},
        description="Queue a new job for an experiment whose latest job failed or was cancelled.",
        tags=["experiments"],
    )
    def post(self, request, experiment_id: int):
        experiment = selectors.experiment_for_user(request.user, experiment_id)
        job = selectors.latest_job(experiment)
        if job is None:
            services.training_job_start(experiment=experiment)
        else:
            services.training_job_retry(job=job)
        return _response(experiment, status.HTTP_201_CREATED)
