from django.urls import path

from . import dataset_views, edit_views, views

app_name = "projects"
urlpatterns = [
    path("projects/", views.project_list, name="list"),
    path("projects/new/", views.project_create, name="create"),
    path("projects/new/sample/", views.project_from_sample, name="create_from_sample"),
    path("projects/<int:project_id>/", views.project_detail, name="detail"),
    path("projects/<int:project_id>/edit/", views.project_edit, name="edit"),
    path("projects/<int:project_id>/delete/", views.project_delete, name="delete"),
    # Datasets (issue 3)
    path("projects/<int:project_id>/datasets/new/", dataset_views.dataset_upload, name="dataset_upload"),
    path("projects/<int:project_id>/datasets/zip/", dataset_views.dataset_upload_zip, name="dataset_upload_zip"),
    path("projects/<int:project_id>/datasets/folder/", dataset_views.folder_upload_start, name="folder_upload_start"),
    path(
        "projects/<int:project_id>/datasets/folder/<uuid:session_id>/files/",
        dataset_views.folder_upload_files,
        name="folder_upload_files",
    ),
    path(
        "projects/<int:project_id>/datasets/folder/<uuid:session_id>/finish/",
        dataset_views.folder_upload_finish,
        name="folder_upload_finish",
    ),
    path("datasets/<int:dataset_id>/", dataset_views.dataset_detail, name="dataset_detail"),
    path("datasets/<int:dataset_id>/status/", dataset_views.dataset_status, name="dataset_status"),
    path("datasets/<int:dataset_id>/retry/", dataset_views.dataset_retry, name="dataset_retry"),
    path("datasets/<int:dataset_id>/delete/", dataset_views.dataset_delete, name="dataset_delete"),
    path("datasets/<int:dataset_id>/without-leaks/", dataset_views.dataset_without_leaks, name="dataset_without_leaks"),
    path(
        "datasets/<int:dataset_id>/groups/<int:index>.jpg",
        dataset_views.dataset_group_thumbnail,
        name="dataset_group_thumbnail",
    ),
    # Fix the data (issue 19): edits of single images, then a new version with them applied
    path("datasets/<int:dataset_id>/edits/", edit_views.dataset_edit, name="dataset_edit"),
    path("datasets/<int:dataset_id>/versions/", edit_views.dataset_version_create, name="dataset_version_create"),
    path("datasets/<int:dataset_id>/images/<path:path>", edit_views.dataset_image, name="dataset_image"),
    path(
        "datasets/<int:dataset_id>/thumbs/<int:class_id>/<int:index>.jpg",
        dataset_views.dataset_thumbnail,
        name="dataset_thumbnail",
    ),
]
