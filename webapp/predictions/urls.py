from django.urls import path

from . import views

app_name = "predictions"
urlpatterns = [
    path("models/<int:model_id>/explanation.png", views.explanation_image, name="explanation"),
]
