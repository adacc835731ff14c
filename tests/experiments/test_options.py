"""One declaration per option drives the engine's validation, the form and the API schema."""

import pytest

from tests.experiments.factories import make_dataset, make_project
from webapp.experiments.forms import ExperimentForm
from webapp.experiments.models import Experiment
from workers.ml.config import parse_config
from workers.ml.errors import ConfigError
from workers.ml.options import OPTIONS

NUMBERS = [o for o in OPTIONS if o.kind in ("int", "number") and abs(o.hi) < 1e5]


def _config_with(opt, value) -> dict:
    mode = next(m for m in ("scratch", "bottleneck", "finetune") if m in opt.modes)
    config = {"mode": mode}
    if opt.section:
        config[opt.section] = {opt.name: value}
    else:
        config[opt.key] = value
    if opt.key == "momentum":
        config["optimizer"] = "sgd"
    return config


@pytest.mark.parametrize("opt", NUMBERS, ids=lambda o: o.key)
def test_the_engine_refuses_just_past_each_declared_bound(opt):
    past = opt.hi + (1 if opt.kind == "int" else 1e-3) if not opt.hi_open else opt.hi
    with pytest.raises(ConfigError) as caught:
        parse_config(_config_with(opt, past))
    assert caught.value.key == opt.key and opt.bounds_text().replace("1e+06", "1000000.0") in str(caught.value)
    inside = opt.lo if not opt.lo_open else (opt.lo + opt.hi) / 2
    parse_config(_config_with(opt, int(inside) if opt.kind == "int" else inside))


@pytest.mark.django_db
def test_the_form_takes_its_defaults_and_help_from_the_declarations(alice):
    project = make_project(alice)
    make_dataset(project, n_train=1, n_val=1)
    form = ExperimentForm(project=project, datasets=project.datasets.all(), bases=Experiment.objects.none())
    for opt in OPTIONS:
        if opt.key in ExperimentForm._SPECIAL:
            continue
        field = form.fields[opt.field_name]
        shown = "" if opt.kind == "choice" and opt.nullable else opt.default  # "" is the form's None
        assert field.initial == shown, opt.key
        assert opt.help in field.help_text, opt.key


@pytest.mark.django_db
def test_the_api_schema_states_the_declared_ranges(alice_api_schema):
    body = alice_api_schema["components"]["schemas"]["ExperimentCreateRequest"]["properties"]
    for opt in NUMBERS:
        prop = body[opt.key] if not opt.section else None
        if prop is None:
            section = alice_api_schema["components"]["schemas"]
            name = "".join(p.title() for p in opt.section.split("_")) + "ConfigRequest"
            prop = section[name]["properties"][opt.name]
        assert prop["minimum"] == opt.lo and prop["maximum"] == opt.hi, opt.key
        assert opt.help in prop.get("description", ""), opt.key


@pytest.fixture
def alice_api_schema(alice):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(alice)
    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()
