"""REST adapters for fixing a dataset (docs/decisions.md, "Fix and retrain"): GET POST
/api/v1/datasets/{id}/edits/ (a user's pending relabel / exclude / restore of single images) and
POST /api/v1/datasets/{id}/versions/ (a new version with them applied, 202)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.core.api.common import StrictCharField, StrictSerializer
from webapp.core.api.errors import error_responses
from webapp.core.api.parsers import BoundedJSONParser

from . import selectors
from .api import DatasetSerializer
from .dataset_edits import dataset_create_from_edits, dataset_edit_set, dataset_edits_pending
from .models import DatasetEdit


class DatasetEditSerializer(serializers.ModelSerializer):
    class Meta:
        model = DatasetEdit
        fields = ["path", "action", "new_class", "created_at"]


class DatasetEditRequestSerializer(StrictSerializer):
    path = StrictCharField(max_length=1024, help_text='The image, relative to the dataset: "train/cats/0001.jpg".')
    action = serializers.ChoiceField(choices=DatasetEdit.Action.values)


# "class" is a Python keyword, so the field is declared after the class body.
DatasetEditRequestSerializer._declared_fields["class"] = StrictCharField(
    required=False, allow_blank=True, max_length=255, help_text="The class a relabelled image moves to."
)


class DatasetEditsView(APIView):
    parser_classes = [BoundedJSONParser]

    @extend_schema(responses={200: DatasetEditSerializer(many=True), **error_responses(404)}, tags=["datasets"])
    def get(self, request, dataset_id: int):
        dataset = selectors.dataset_for_user(request.user, dataset_id)
        return Response(
            DatasetEditSerializer(dataset_edits_pending(dataset=dataset, user=request.user), many=True).data
        )

    @extend_schema(
        request=DatasetEditRequestSerializer,
        responses={200: DatasetEditSerializer(many=True), **error_responses(400, 404, 409, 415)},
        description='{"path", "action": "relabel"|"exclude"|"restore", "class"} (class for relabel). The edit waits '
        "for POST .../versions/. Relabelling to the image's own class or restoring an image with a pending edit "
        "drops that edit; restore also brings back an image this version left out of its parent. Answers the "
        "pending edits.",
        tags=["datasets"],
    )
    def post(self, request, dataset_id: int):
        dataset = selectors.dataset_for_user(request.user, dataset_id)
        data = DatasetEditRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        dataset_edit_set(
            dataset=dataset,
            user=request.user,
            path=values["path"],
            action=values["action"],
            new_class=values.get("class", ""),
        )
        return Response(
            DatasetEditSerializer(dataset_edits_pending(dataset=dataset, user=request.user), many=True).data
        )


class DatasetVersionsView(APIView):
    @extend_schema(
        request=None,
        responses={202: DatasetSerializer, **error_responses(404, 409, 503)},
        description="Queues a new version made from this one's files with your pending edits applied (they go); "
        "its report's lineage names this version and what changed. 409 without pending edits.",
        tags=["datasets"],
    )
    def post(self, request, dataset_id: int):
        dataset = selectors.dataset_for_user(request.user, dataset_id)
        new = dataset_create_from_edits(dataset=dataset, user=request.user)
        return Response(DatasetSerializer(new).data, status=status.HTTP_202_ACCEPTED)
