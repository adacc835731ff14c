from datetime import timedelta

from webapp.dashboard.templatetags.dashboard import span


def test_it_writes_durations_short_enough_for_a_table_cell():
    assert span(None) == "—"
    assert span(timedelta(seconds=-3)) == "0s"
    assert span(timedelta(seconds=42)) == "42s"
    assert span(timedelta(minutes=3, seconds=5)) == "3m 05s"
    assert span(timedelta(hours=2, minutes=14, seconds=59)) == "2h 14m"
    assert span(timedelta(days=3, hours=4)) == "3d 4h"
