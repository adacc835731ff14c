from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from .api import auth, datasets, experiments, predict, projects, trained_models
from .api.errors import api_not_found
from .api.health import HealthView

urlpatterns = [
    path("health/", HealthView.as_view(), name="api-health"),
    path("auth/token/", auth.TokenObtainView.as_view(), name="api-token"),
    path("auth/token/rotate/", auth.TokenRotateView.as_view(), name="api-token-rotate"),
    path("projects/", projects.ProjectListView.as_view(), name="api-projects"),
    path("projects/<int:project_id>/", projects.ProjectDetailView.as_view(), name="api-project"),
    path("projects/<int:project_id>/datasets/", datasets.DatasetUploadView.as_view(), name="api-dataset-upload"),
    path("datasets/<int:dataset_id>/", datasets.DatasetDetailView.as_view(), name="api-dataset"),
    path("datasets/<int:dataset_id>/retry/", datasets.DatasetRetryView.as_view(), name="api-dataset-retry"),
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
    path("projects/<int:project_id>/models/", trained_models.ModelListView.as_view(), name="api-models"),
    path("models/<int:model_id>/publish/", trained_models.ModelPublishView.as_view(), name="api-model-publish"),
    path("projects/<int:project_id>/predict/", predict.ProjectPredictView.as_view(), name="api-project-predict"),
    path("models/<int:model_id>/predict/", predict.ModelPredictView.as_view(), name="api-model-predict"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    re_path(r"^[\s\S]*$", api_not_found),  # any rest of the path, newlines included
]
