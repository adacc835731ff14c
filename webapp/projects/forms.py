from django import forms

from .models import Project


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["name", "description", "store_predictions"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}
        help_texts = {"store_predictions": "Keep the images sent to this project's prediction endpoint."}
