from datetime import datetime, timezone

import pytest

from gateway_project.durations import InvalidDuration, add_duration

START = datetime(2026, 1, 31, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("text, expected", [
    ("30s", datetime(2026, 1, 31, 12, 0, 30, tzinfo=timezone.utc)),
    ("30m", datetime(2026, 1, 31, 12, 30, tzinfo=timezone.utc)),
    ("1h", datetime(2026, 1, 31, 13, 0, tzinfo=timezone.utc)),
    ("1d", datetime(2026, 2, 1, 12, 0, tzinfo=timezone.utc)),
    ("1mo", datetime(2026, 2, 28, 12, 0, tzinfo=timezone.utc)),
    ("12mo", datetime(2027, 1, 31, 12, 0, tzinfo=timezone.utc)),
])
def test_add_duration(text, expected):
    assert add_duration(START, text) == expected


@pytest.mark.parametrize("text", ["", "30", "d", "1y", "-1d", "1.5h"])
def test_bad_durations_are_refused(text):
    with pytest.raises(InvalidDuration):
        add_duration(START, text)
