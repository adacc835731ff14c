"""One presentation per kind of value (webapp.core.formatting), a filter for each in every template."""

import zoneinfo
from datetime import UTC, datetime, timedelta

from django.template import Context, Template
from django.utils import timezone

from webapp.core.formatting import (
    format_backbone,
    format_duration,
    format_mode,
    format_percent,
    format_points,
    format_run,
    format_time,
)

MOMENT = datetime(2026, 11, 29, 18, 4, 9, tzinfo=UTC)


def test_it_writes_accuracy_as_a_percentage_with_one_decimal():
    assert format_percent(0.92) == "92.0%"
    assert format_percent(1) == "100.0%"
    assert format_percent(0.4567, 0) == "46%"
    assert format_percent(None) == "\u2014" and format_percent("") == "\u2014"
    assert format_points(-3.84) == "\u22123.8 points" and format_points(2) == "+2.0 points"
    assert format_points(0) == "\u00b10.0 points"


def test_it_writes_durations_in_words_and_never_zero_seconds():
    assert format_duration(None) == "\u2014"
    assert format_duration(timedelta(0)) == "under 1 s"
    assert format_duration(timedelta(milliseconds=400)) == "under 1 s"
    assert format_duration(timedelta(seconds=-3)) == "under 1 s"
    assert format_duration(42) == "42 s"
    assert format_duration(timedelta(minutes=1, seconds=5)) == "1 min 5 s"
    assert format_duration(timedelta(minutes=3)) == "3 min"
    assert format_duration(timedelta(hours=2, minutes=14, seconds=59)) == "2 h 14 min"
    assert format_duration(timedelta(days=3, hours=4)) == "3 d 4 h"


def test_it_writes_times_in_the_readers_zone_and_always_names_the_zone():
    assert format_time(MOMENT, zone=UTC) == "2026-11-29 18:04 UTC"
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    assert format_time(MOMENT, zone=paris) == "2026-11-29 19:04 CET"
    assert format_time(MOMENT, "second", zone=paris) == "2026-11-29 19:04:09 CET"
    assert format_time(MOMENT, "clock", zone=paris) == "19:04:09 CET"
    assert format_time(MOMENT, "hour", zone=paris) == "19:00 CET"
    # A zone without an abbreviation is named by its offset from UTC, never a bare "+04".
    assert format_time(MOMENT, zone=zoneinfo.ZoneInfo("Asia/Dubai")) == "2026-11-29 22:04 UTC+04"
    with timezone.override(paris):
        assert format_time(MOMENT) == "2026-11-29 19:04 CET"
    assert format_time(None) == "\u2014"


def test_it_names_modes_backbones_and_runs_one_way():
    modes = [format_mode(m) for m in ("bottleneck", "finetune", "scratch")]
    assert modes == ["Bottleneck", "Fine-tune", "From scratch"]
    assert format_backbone("vgg16") == "VGG16" and format_backbone("mobilenet_v2", "finetune") == "MobileNetV2"
    # A scratch experiment keeps the config's default backbone name; older models stored "scratch" or "none".
    assert format_backbone("vgg16", "scratch") == "small convnet"
    assert format_backbone("scratch") == format_backbone("none") == format_backbone("") == "small convnet"
    assert format_run(4) == "Run 4"


def test_every_template_gets_the_filters_without_loading_anything():
    html = Template("{{ a|percent }} · {{ d|duration }} · {{ t|when }} · {{ m|mode_name }} · {{ b|backbone_name:m }}")
    context = Context({"a": 0.92, "d": 65, "t": MOMENT, "m": "scratch", "b": "vgg16"})
    with timezone.override(UTC):
        assert html.render(context) == "92.0% · 1 min 5 s · 2026-11-29 18:04 UTC · From scratch · small convnet"
