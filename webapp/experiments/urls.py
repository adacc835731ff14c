from django.urls import path

from . import compare, gallery_views, label_error_views, preview, views

app_name = "experiments"
_exp = "projects/<int:project_id>/experiments/<int:experiment_id>"
urlpatterns = [
    path("projects/<int:project_id>/experiments/", views.experiment_list, name="list"),
    path("projects/<int:project_id>/experiments/new/", views.experiment_create, name="create"),
    path("projects/<int:project_id>/experiments/estimate/", views.experiment_estimate, name="estimate"),
    path(
        "projects/<int:project_id>/experiments/augmentation-preview/",
        preview.augmentation_preview,
        name="augmentation_preview",
    ),
    path(f"{_exp}/", views.experiment_detail, name="detail"),
    path(f"{_exp}/status/", views.experiment_status, name="status"),
    path(f"{_exp}/metrics.json", views.experiment_metrics, name="metrics"),
    path(f"{_exp}/history.csv", views.experiment_history_csv, name="history_csv"),
    path(f"{_exp}/edit/", views.experiment_edit, name="edit"),
    # Error analysis (docs/decisions.md, "Error analysis")
    path(f"{_exp}/gallery/", gallery_views.cell_gallery, name="gallery"),
    path(f"{_exp}/mistakes/", gallery_views.mistakes_gallery, name="mistakes"),
    path(f"{_exp}/classes/", gallery_views.class_gallery, name="class_gallery"),
    path(f"{_exp}/map/", gallery_views.data_map, name="data_map"),
    path(f"{_exp}/delete/", views.experiment_delete, name="delete"),
    # Likely label errors, and Retrain on a fixed version (docs/decisions.md, "Fix and retrain")
    path(f"{_exp}/retrain/", label_error_views.experiment_retrain_view, name="retrain"),
    path("datasets/<int:dataset_id>/label-errors/", label_error_views.label_errors_page, name="label_errors"),
    path(
        "datasets/<int:dataset_id>/label-errors/status/",
        label_error_views.label_errors_status,
        name="label_errors_status",
    ),
    path(
        "datasets/<int:dataset_id>/label-errors/start/", label_error_views.label_errors_start, name="label_errors_start"
    ),
    path("projects/<int:project_id>/jobs/<int:job_id>/cancel/", views.job_cancel, name="job_cancel"),
    path("projects/<int:project_id>/jobs/<int:job_id>/retry/", views.job_retry, name="job_retry"),
    path("projects/<int:project_id>/jobs/<int:job_id>/resume/", views.job_resume, name="job_resume"),
    path("projects/<int:project_id>/compare/", compare.compare, name="compare"),
    path("projects/<int:project_id>/models/", views.model_list, name="models"),
    path("projects/<int:project_id>/models/<int:model_id>/publish/", views.model_publish, name="model_publish"),
    path("projects/<int:project_id>/models/<int:model_id>/unpublish/", views.model_unpublish, name="model_unpublish"),
    path("projects/<int:project_id>/models/<int:model_id>/threshold/", views.model_threshold, name="model_threshold"),
    path("projects/<int:project_id>/models/<int:model_id>/delete/", views.model_delete, name="model_delete"),
]
