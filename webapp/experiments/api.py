"""The experiments app's REST adapters: GET POST /api/v1/projects/{id}/experiments/,
GET PATCH DELETE /api/v1/experiments/{id}/, POST /api/v1/experiments/{id}/cancel/, /retry/ and /resume/, and
GET /api/v1/projects/{id}/models/ and PATCH DELETE /api/v1/models/{id}/ (its threshold; publishing a model is
the predictions app's: it loads it into the serving cache)."""

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.core.api.common import (
    StrictCharField,
    StrictIntegerField,
    StrictLimitOffsetPagination,
    StrictSerializer,
    documented_json,
    number_range,
)
from webapp.core.api.errors import error_responses
from webapp.core.api.parsers import BoundedJSONParser
from webapp.core.errors import ServiceError
from webapp.projects.models import Dataset
from webapp.projects.selectors import project_for_user
from workers.ml.config import ZOOM_PAIR_BOUNDS
from workers.ml.options import MODES, OPTIONS, Option, section_options

from . import editing, selectors, services, thresholds
from .models import Experiment, TrainedModel

# --- the request body: built from the option declarations the engine validates with -------------


def _option_schema(opt: Option) -> dict:
    """JSON schema of one declared option, for the kinds DRF fields cannot state."""
    if opt.kind == "size":
        side = {"type": "integer", "minimum": opt.lo, "maximum": opt.hi}
        return {"oneOf": [side, {"type": "array", "items": side, "minItems": 2, "maxItems": 2}]}
    if opt.kind == "zoom":
        pair = {"type": "number", "minimum": ZOOM_PAIR_BOUNDS[0], "exclusiveMinimum": True,
                "maximum": ZOOM_PAIR_BOUNDS[1]}  # fmt: skip
        single = {"type": "number", "minimum": opt.lo, "maximum": opt.hi, "exclusiveMaximum": opt.hi_open}
        return {"oneOf": [single, {"type": "array", "items": pair, "minItems": 2, "maxItems": 2}]}
    return {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}  # blocks


def _option_field(opt: Option) -> serializers.Field:
    modes = "" if set(opt.modes) == set(MODES) else f" Modes: {', '.join(opt.modes)}."
    text = f"{opt.help}{f' Unit: {opt.unit}.' if opt.unit else ''}{modes}"
    if opt.kind == "int":
        return serializers.IntegerField(
            required=opt.key == "mode", min_value=opt.lo, max_value=opt.hi, allow_null=opt.nullable, help_text=text
        )
    if opt.kind == "number":
        return number_range(
            opt.lo, opt.hi, lo_open=opt.lo_open, hi_open=opt.hi_open, nullable=opt.nullable, help_text=text
        )
    if opt.kind == "bool":
        return serializers.BooleanField(required=False, help_text=text)
    if opt.kind == "choice":
        return serializers.ChoiceField(
            [c for c in opt.choices if c is not None],
            required=opt.key == "mode",
            allow_null=opt.nullable,
            help_text=text,
        )
    if opt.kind == "id":
        return serializers.IntegerField(required=False, allow_null=True, help_text=text)
    return documented_json({**_option_schema(opt), "description": text})


def _section_serializer(section: str) -> type[serializers.Serializer]:
    fields = {o.name: _option_field(o) for o in section_options(section)}
    name = "".join(part.title() for part in section.split("_")) + "ConfigSerializer"
    return type(name, (serializers.Serializer,), fields)


ExperimentCreateSerializer = type(
    "ExperimentCreateSerializer",
    (serializers.Serializer,),
    {
        "__doc__": "Documents the body from workers/ml/options.py; parse_config validates it with the same "
        "declarations.",
        "dataset": serializers.IntegerField(help_text="A ready dataset of this project."),
        "name": serializers.CharField(required=False, max_length=120, help_text="Defaults to the mode and dataset."),
        "notes": serializers.CharField(required=False, allow_blank=True),
        **{o.key: _option_field(o) for o in OPTIONS if o.section is None},
        **{s: _section_serializer(s)(required=False) for s in ("head", "early_stopping", "augmentation")},
    },
)


class _ExperimentFields(StrictSerializer):
    """The keys that are not config; everything else is handed to the config validator as is."""

    dataset = StrictIntegerField()
    name = StrictCharField(required=False, max_length=120)
    notes = StrictCharField(required=False, allow_blank=True)


# --- responses ---------------------------------------------------------------------------------


class TrainedModelSerializer(serializers.ModelSerializer):
    class_names = serializers.ListField(child=serializers.CharField(), read_only=True)
    image_size = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    metrics = serializers.JSONField(read_only=True)

    class Meta:
        model = TrainedModel
        fields = [
            "id", "project", "experiment", "version", "backbone", "class_names", "image_size",
            "metrics", "threshold", "size_bytes", "published", "published_at", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class ThresholdEffectSerializer(serializers.Serializer):
    threshold = serializers.FloatField()
    accepted = serializers.IntegerField(help_text="Validation images whose confidence is at least the threshold.")
    coverage = serializers.FloatField(help_text="Accepted among all validation images.")
    precision = serializers.FloatField(allow_null=True, help_text="Correct among the accepted; null when none is.")
    recall = serializers.FloatField(help_text="Correct and accepted among all validation images.")


class TrainedModelDetailSerializer(TrainedModelSerializer):
    threshold_effect = serializers.SerializerMethodField(
        help_text="What the threshold does on validation images; null without a threshold, or for a model "
        "trained before its validation curve was stored."
    )

    class Meta(TrainedModelSerializer.Meta):
        fields = [*TrainedModelSerializer.Meta.fields, "threshold_effect"]
        read_only_fields = fields

    @extend_schema_field(ThresholdEffectSerializer(allow_null=True))
    def get_threshold_effect(self, model) -> dict | None:
        return thresholds.threshold_effect(model)


class ModelUpdateSerializer(StrictSerializer):
    threshold = number_range(
        0, 1, nullable=True, help_text="Predictions less confident than this answer accepted: false; null clears it."
    )
    target_precision = number_range(
        0, 1, lo_open=True, help_text="Instead of a threshold: the lowest one reaching this precision on validation."
    )


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


def _interval(text: str) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.FloatField(allow_null=True), min_length=2, max_length=2, required=False, help_text=text
    )


class RecallSerializer(serializers.Serializer):
    # "class" is a Python keyword: declared below.
    recall = serializers.FloatField(allow_null=True)
    ci95 = _interval("Wilson 95% interval of the recall.")
    support = serializers.IntegerField()


RecallSerializer._declared_fields["class"] = serializers.CharField()


class CalibrationSerializer(serializers.Serializer):
    temperature = serializers.FloatField(help_text="Fitted on validation; part of the saved model.")
    ece_before = serializers.FloatField(help_text="Expected calibration error before temperature scaling.")
    ece_after = serializers.FloatField()
    reliability_before = serializers.ListField(child=serializers.DictField(), required=False)
    reliability_after = serializers.ListField(child=serializers.DictField(), required=False)


class EvaluationSerializer(serializers.Serializer):
    split = serializers.ChoiceField(
        ["test", "validation"],
        required=False,
        help_text="Where the numbers were measured: test (held out), or validation when the dataset has no test "
        "split (the epoch was chosen on it: optimistic).",
    )
    n = serializers.IntegerField(required=False, help_text="Images measured.")
    accuracy = serializers.FloatField()
    accuracy_ci95 = _interval("Wilson 95% interval of the accuracy.")
    macro_f1 = serializers.FloatField(required=False)
    macro_f1_ci95 = _interval("Bootstrap 95% interval of the macro-F1.")
    balanced_accuracy = serializers.FloatField(required=False)
    per_class_recall = RecallSerializer(many=True, required=False, help_text="Worst first.")
    calibration = CalibrationSerializer(required=False)
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


class LayerSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField()
    output_shape = serializers.CharField()
    params = serializers.IntegerField()
    trainable_params = serializers.IntegerField()
    state = serializers.ChoiceField(["trainable", "frozen", "partly frozen", "statistics", "no weights"])
    depth = serializers.IntegerField(help_text="1 for a layer inside the backbone.")


class ModelSummarySerializer(serializers.Serializer):
    layers = LayerSerializer(many=True)
    total_params = serializers.IntegerField()
    trainable_params = serializers.IntegerField()
    non_trainable_params = serializers.IntegerField()
    file_bytes = serializers.IntegerField(help_text="Size of the saved .keras file.")


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


class PrecisionSerializer(serializers.Serializer):
    requested = serializers.ChoiceField(["auto", "float32", "bfloat16"])
    used = serializers.ChoiceField(["float32", "bfloat16"], help_text="The training features' arithmetic.")
    source = serializers.ChoiceField(
        ["asked", "measured", "measured earlier", "cached features"],
        help_text="Why: the config named it; auto timed both on this worker now or earlier; or features stored "
        "in that precision were reused.",
    )
    images_per_s = serializers.DictField(child=serializers.FloatField(), help_text="The measured speed of each.")
    relative_error = serializers.FloatField(allow_null=True, help_text="bfloat16's features against float32's.")
    tolerance = serializers.FloatField()


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
    attempts = serializers.IntegerField(help_text="Times a worker took the latest job (automatic retries included).")
    resumed_from_epoch = serializers.IntegerField(
        allow_null=True,
        help_text="The completed epochs the job's latest attempt continued from (its checkpoint); null when it "
        "started at epoch 1.",
    )
    resumable = serializers.BooleanField(
        help_text="The latest job failed or was cancelled and has a checkpoint: POST .../resume/ continues it."
    )
    history = EpochSerializer(many=True)
    evaluation = EvaluationSerializer(allow_null=True)
    versus_base = VersusBaseSerializer(allow_null=True, help_text="Fine-tunes only: the result against its base model.")
    model = TrainedModelSerializer(allow_null=True)
    summary = ModelSummarySerializer(
        allow_null=True, help_text="The trained model's layers, as model.summary() shows them; null before it succeeds."
    )
    precision = PrecisionSerializer(
        allow_null=True,
        help_text="Bottleneck runs: the arithmetic the frozen base computed the training features in (validation, "
        "test and the saved model are float32); null for other modes.",
    )
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
        "attempts": job.attempts if job else 0,
        "resumed_from_epoch": job.resumed_from_epoch if job else None,
        "resumable": selectors.job_resumable(job),
        "history": selectors.job_history(job) if job else [],
        "evaluation": (job.result or {}).get("evaluation") if job else None,
        "versus_base": selectors.versus_base(job),
        "model": model,
        "summary": (job.result or {}).get("summary") if job else None,
        "precision": ((job.result or {}).get("timings") or {}).get("precision") if job else None,
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
        description="The body is an experiment config (workers/ml/options.py) plus `dataset`, `name` and `notes`. "
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


class ExperimentUpdateSerializer(StrictSerializer):
    name = StrictCharField(required=False, max_length=120)
    notes = StrictCharField(required=False, allow_blank=True)


class ExperimentDetailView(GenericAPIView):
    serializer_class = ExperimentSerializer
    parser_classes = [BoundedJSONParser]

    @extend_schema(responses={200: ExperimentSerializer, **error_responses(404)}, tags=["experiments"])
    def get(self, request, experiment_id: int):
        return _response(selectors.experiment_for_user(request.user, experiment_id))

    @extend_schema(
        request=ExperimentUpdateSerializer,
        responses={200: ExperimentSerializer, **error_responses(400, 404, 415)},
        description="Rename the experiment and/or replace its notes; its config cannot change (clone it instead: "
        "POST a new experiment with the changed config).",
        tags=["experiments"],
    )
    def patch(self, request, experiment_id: int):
        experiment = selectors.experiment_for_user(request.user, experiment_id)
        data = ExperimentUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return _response(editing.experiment_update(experiment=experiment, **data.validated_data))

    @extend_schema(
        responses={204: None, **error_responses(404, 409)},
        description="Deletes the experiment with its runs, metrics, checkpoints, models and their exports. 409, "
        "with the reason, while a run is queued or running (cancel it), one of its models is published "
        "(unpublish it) or a fine-tune experiment starts from it (delete that first).",
        tags=["experiments"],
    )
    def delete(self, request, experiment_id: int):
        editing.experiment_delete(experiment=selectors.experiment_for_user(request.user, experiment_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


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
        services.experiment_cancel(experiment=experiment)
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
        services.experiment_retry(experiment=experiment)
        return _response(experiment, status.HTTP_201_CREATED)


class ExperimentResumeView(APIView):
    @extend_schema(
        request=None,
        responses={202: ExperimentSerializer, **error_responses(404, 409, 503)},
        description="Queue the latest job again, if it failed or was cancelled, to continue after the last epoch "
        "its checkpoint holds (same job: its attempts and history carry on). 409, with the reason, when it has "
        "no checkpoint (retry it instead) or is not failed or cancelled.",
        tags=["experiments"],
    )
    def post(self, request, experiment_id: int):
        experiment = selectors.experiment_for_user(request.user, experiment_id)
        services.experiment_resume(experiment=experiment)
        return _response(experiment, status.HTTP_202_ACCEPTED)


class ModelListView(GenericAPIView):
    serializer_class = TrainedModelSerializer
    pagination_class = StrictLimitOffsetPagination

    @extend_schema(responses={200: TrainedModelSerializer(many=True), **error_responses(400, 404)}, tags=["models"])
    def get(self, request, project_id: int):
        project = project_for_user(request.user, project_id)
        page = self.paginate_queryset(selectors.models_for_project(project))
        return self.get_paginated_response(TrainedModelSerializer(page, many=True).data)


class ModelDetailView(GenericAPIView):
    serializer_class = TrainedModelDetailSerializer
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        request=ModelUpdateSerializer,
        responses={200: TrainedModelDetailSerializer, **error_responses(400, 404, 409, 415)},
        description="Send one of `threshold` (a fraction, or null to accept every prediction again) or "
        "`target_precision`, which sets the lowest threshold reaching that precision on the model's "
        "validation images. 409 when no threshold reaches it, or the model has no validation curve.",
        tags=["models"],
    )
    def patch(self, request, model_id: int):
        model = selectors.model_for_user(request.user, model_id)
        data = ModelUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data
        if len(given) != 1:
            raise ServiceError(
                "Send one of 'threshold' (a fraction from 0 to 1, or null to clear it) or 'target_precision'."
            )
        if "target_precision" in given:
            model = thresholds.trained_model_threshold_for_precision(model=model, target=given["target_precision"])
        else:
            model = thresholds.trained_model_threshold_set(model=model, threshold=given["threshold"])
        return Response(TrainedModelDetailSerializer(model).data)

    @extend_schema(
        responses={204: None, **error_responses(404, 409)},
        description="Deletes the model's files and exports; the run that trained it stays in its experiment. "
        "409, with the reason, while it is published or a fine-tune experiment starts from it.",
        tags=["models"],
    )
    def delete(self, request, model_id: int):
        editing.trained_model_delete(model=selectors.model_for_user(request.user, model_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
