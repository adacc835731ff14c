"""Issue 15's API shapes: an experiment's evaluation says which split it was measured on, with 95%
intervals and calibration; models carry their threshold and predictions `accepted`, in the schema too."""

import pytest

from tests.predictions.conftest import make_model

pytestmark = pytest.mark.django_db

ISSUE_15_FIELDS = {"split", "n", "accuracy_ci95", "macro_f1", "macro_f1_ci95", "balanced_accuracy", "calibration"}


def test_the_experiment_api_returns_the_split_intervals_and_calibration(alice_api, alice_project, tiny_model):
    model = make_model(alice_project, tiny_model)
    job = model.job
    job.result["evaluation"] |= {
        "split": "test", "n": 12, "accuracy_ci95": [0.757, 1.0], "macro_f1": 1.0, "macro_f1_ci95": [1.0, 1.0],
        "balanced_accuracy": 1.0, "per_class_recall": [{"class": "circle", "recall": 1.0, "ci95": [0.51, 1.0], "support": 4}],
        "calibration": {"temperature": 1.7, "ece_before": 0.2, "ece_after": 0.05},
    }  # fmt: skip
    job.save(update_fields=["result"])
    evaluation = alice_api.get(f"/api/v1/experiments/{model.experiment_id}/").json()["evaluation"]
    assert ISSUE_15_FIELDS <= set(evaluation)
    assert (evaluation["split"], evaluation["n"], evaluation["accuracy_ci95"]) == ("test", 12, [0.757, 1.0])
    assert evaluation["calibration"] == {"temperature": 1.7, "ece_before": 0.2, "ece_after": 0.05}
    assert evaluation["per_class_recall"][0]["class"] == "circle"
    [listed] = alice_api.get(f"/api/v1/projects/{alice_project.pk}/models/").json()["results"]
    assert "threshold" in listed and listed["threshold"] is None  # null when unset


def test_the_schema_documents_the_shapes(alice_api):
    components = alice_api.get("/api/v1/schema/?format=json").json()["components"]["schemas"]
    assert ISSUE_15_FIELDS <= set(components["Evaluation"]["properties"])
    assert {"temperature", "ece_before", "ece_after"} <= set(components["Calibration"]["properties"])
    assert "threshold" in components["TrainedModel"]["properties"]
    assert {"threshold", "target_precision"} == set(components["PatchedModelUpdateRequest"]["properties"])
    assert "threshold" in components["PredictedModel"]["properties"]
    assert "accepted" in components["Prediction"]["properties"]
