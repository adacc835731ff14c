from django import forms

from .models import Project


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["name", "description", "store_predictions"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}
        help_texts = {"store_predictions": "Keep the images sent to this project's prediction endpoint."}


def _sample_choices():
    from workers.ml.samples import SAMPLES

    return [(key, f"{s.label}: {s.description}") for key, s in SAMPLES.items()]


class SampleProjectForm(forms.Form):
    """A new project whose first dataset is a Keras sample (workers/ml/samples.py)."""

    name = forms.CharField(max_length=120, help_text="Leave empty to name it after the sample.", required=False)
    sample = forms.ChoiceField(choices=_sample_choices, widget=forms.RadioSelect)
    per_class = forms.ChoiceField(
        label="Size",
        choices=[("100", "100 training images per class (quick)"), ("500", "500 per class"), ("all", "All images")],
        initial="100",
        widget=forms.RadioSelect,
        help_text="Validation and test take a fifth as many again; the sample's own test split is the test split.",
    )
