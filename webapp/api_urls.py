"""The REST API under /api/v1/: each app's adapters (its api.py) wired in one place, with the shared
plumbing of webapp/core/api/ (error shape, parsers, health) and the OpenAPI schema and docs."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from webapp.accounts import api as accounts
from webapp.core.api.errors import api_not_found
from webapp.core.api.health import HealthView
from webapp.experiments import api as experiments
from webapp.experiments import label_errors_api
from webapp.exports import api as exports
from webapp.predictions import api as predictions
from webapp.projects import api as projects
from webapp.projects import edits_api

urlpatterns = [
    # Predict first: the hot path is matched before the other routes are tried (issue 20, point 7).
    path("projects/<int:project_id>/predict/", predictions.ProjectPredictView.as_view(), name="api-project-predict"),
    path("models/<int:model_id>/predict/", predictions.ModelPredictView.as_view(), name="api-model-predict"),
    path("health/", HealthView.as_view(), name="api-health"),
    path("auth/token/", accounts.TokenObtainView.as_view(), name="api-token"),
    path("auth/token/rotate/", accounts.TokenRotateView.as_view(), name="api-token-rotate"),
    path("projects/", projects.ProjectListView.as_view(), name="api-projects"),
    path("projects/<int:project_id>/", projects.ProjectDetailView.as_view(), name="api-project"),
    path("projects/<int:project_id>/datasets/", projects.DatasetUploadView.as_view(), name="api-dataset-upload"),
    path("datasets/<int:dataset_id>/", projects.DatasetDetailView.as_view(), name="api-dataset"),
    path("datasets/<int:dataset_id>/retry/", projects.DatasetRetryView.as_view(), name="api-dataset-retry"),
    path(
        "datasets/<int:dataset_id>/without-leaks/",
        projects.DatasetWithoutLeaksView.as_view(),
        name="api-dataset-without-leaks",
    ),
    # Likely label errors, fix and retrain (docs/decisions.md, "Fix and retrain")
    path(
        "datasets/<int:dataset_id>/label-errors/", label_errors_api.LabelErrorsView.as_view(), name="api-label-errors"
    ),
    path("datasets/<int:dataset_id>/edits/", edits_api.DatasetEditsView.as_view(), name="api-dataset-edits"),
    path("datasets/<int:dataset_id>/versions/", edits_api.DatasetVersionsView.as_view(), name="api-dataset-versions"),
    path(
        "experiments/<int:experiment_id>/retrain/",
        label_errors_api.ExperimentRetrainView.as_view(),
        name="api-experiment-retrain",
    ),
    path("projects/<int:project_id>/experiments/", experiments.ExperimentListView.as_view(), name="api-experiments"),
    path("experiments/<int:experiment_id>/", experiments.ExperimentDetailView.as_view(), name="api-experiment"),
    path(
        "experiments/<int:experiment_id>/cancel/",
        experiments.ExperimentCancelView.as_view(),
        name="api-experiment-cancel",
    ),
    path(
        "experiments/<int:experiment_id>/retry/", experiments.ExperimentRetryView.as_view(), name="api-experiment-retry"
    ),
    path(
        "experiments/<int:experiment_id>/resume/",
        experiments.ExperimentResumeView.as_view(),
        name="api-experiment-resume",
    ),
    path("projects/<int:project_id>/models/", experiments.ModelListView.as_view(), name="api-models"),
    path("models/<int:model_id>/", experiments.ModelDetailView.as_view(), name="api-model"),
    path("models/<int:model_id>/publish/", predictions.ModelPublishView.as_view(), name="api-model-publish"),
    path("models/<int:model_id>/exports/", exports.ModelExportListView.as_view(), name="api-model-exports"),
    path("exports/<int:export_id>/", exports.ModelExportDetailView.as_view(), name="api-export"),
    path("exports/<int:export_id>/download/", exports.ModelExportDownloadView.as_view(), name="api-export-download"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    re_path(r"^[\s\S]*$", api_not_found),  # any rest of the path, newlines included
]
