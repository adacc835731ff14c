"""REST adapters for likely label errors and retraining (docs/decisions.md, "Likely label errors", "Fix and
retrain"): GET POST /api/v1/datasets/{id}/label-errors/ and POST /api/v1/experiments/{id}/retrain/."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.core.api.common import StrictIntegerField, StrictLimitOffsetPagination, StrictSerializer
from webapp.core.api.errors import error_responses
from webapp.core.api.parsers import BoundedJSONParser
from webapp.core.errors import ServiceError
from webapp.projects.models import Dataset
from webapp.projects.selectors import dataset_for_user

from . import label_errors, selectors
from .api import ExperimentSerializer, experiment_body
from .retrain import experiment_retrain


class LabelIssueSerializer(serializers.Serializer):
    path = serializers.CharField(help_text='Relative to the dataset: "train/cats/0001.jpg".')
    split = serializers.CharField()
    given = serializers.CharField(help_text="The class the image is filed under.")
    suggested = serializers.CharField(help_text="The class the out-of-sample model finds most likely.")
    confidence = serializers.FloatField(help_text="The out-of-sample probability of the given class.")
    suggested_confidence = serializers.FloatField()


class LabelReviewSerializer(serializers.Serializer):
    status = serializers.CharField(allow_null=True, help_text="queued | running | ready | failed; null: never asked.")
    progress = serializers.FloatField()
    error = serializers.CharField()
    experiment = serializers.IntegerField(
        allow_null=True, help_text="Whose backbone, weights and size gave the features."
    )
    features = serializers.DictField()
    images = serializers.IntegerField(help_text="Training and validation images scored.")
    count = serializers.IntegerField(help_text="Likely mislabelled images, all pages.")
    results = LabelIssueSerializer(many=True, help_text="This page of them, the most likely mislabelled first.")


def _body(request, view, dataset: Dataset) -> dict:
    review = label_errors.label_review_for(dataset)
    issues = review.issues if review else []
    page = view.paginator.paginate_queryset(issues, request, view=view) or []
    return {
        "status": review.status if review else None,
        "progress": review.progress if review else 0.0,
        "error": review.error if review else "",
        "experiment": review.experiment_id if review else None,
        "features": review.features if review else {},
        "images": (review.result or {}).get("images", 0) if review else 0,
        "count": len(issues),
        "results": page,
    }


class LabelErrorsView(APIView):
    pagination_class = StrictLimitOffsetPagination

    @property
    def paginator(self):
        if not hasattr(self, "_paginator"):
            self._paginator = self.pagination_class()
        return self._paginator

    @extend_schema(
        responses={200: LabelReviewSerializer, **error_responses(400, 404)},
        description="The dataset version's likely label errors, ranked (limit / offset page them).",
        tags=["datasets"],
    )
    def get(self, request, dataset_id: int):
        dataset = dataset_for_user(request.user, dataset_id)
        return Response(LabelReviewSerializer(_body(request, self, dataset)).data)

    @extend_schema(
        request=None,
        responses={202: LabelReviewSerializer, **error_responses(404, 409, 503)},
        description="Queues the search (again). 409 while one runs, or when no bottleneck or fine-tune experiment "
        "on this version gives features to look with (run one first).",
        tags=["datasets"],
    )
    def post(self, request, dataset_id: int):
        dataset = dataset_for_user(request.user, dataset_id)
        label_errors.label_review_start(dataset=dataset)
        return Response(LabelReviewSerializer(_body(request, self, dataset)).data, status=status.HTTP_202_ACCEPTED)


class RetrainSerializer(StrictSerializer):
    dataset = StrictIntegerField(help_text="A ready version made from the experiment's version (edits, without leaks).")


class ExperimentRetrainView(APIView):
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        request=RetrainSerializer,
        responses={201: ExperimentSerializer, **error_responses(400, 404, 409, 415, 503)},
        description='{"dataset": id}: a new experiment "<name> on v<N>" with the same config on that version, '
        "started; GET /projects/{id}/compare/?experiment=a&experiment=b shows both.",
        tags=["experiments"],
    )
    def post(self, request, experiment_id: int):
        experiment = selectors.experiment_for_user(request.user, experiment_id)
        data = RetrainSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = Dataset.objects.filter(pk=data.validated_data["dataset"], project_id=experiment.project_id).first()
        if dataset is None:
            raise ServiceError(f"This project has no dataset {data.validated_data['dataset']}.", field="dataset")
        created = experiment_retrain(experiment=experiment, dataset=dataset, user=request.user)
        return Response(ExperimentSerializer(experiment_body(created)).data, status=status.HTTP_201_CREATED)
