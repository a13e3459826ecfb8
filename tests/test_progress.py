"""The one duration format and the progress lines of long loops."""

import pytest

from ctx_tf.progress import Progress, eta, format_duration


@pytest.mark.parametrize("seconds, text", [
    (0, "0:00:00"), (59.4, "0:00:59"), (59.6, "0:01:00"), (187, "0:03:07"),
    (3723, "1:02:03"), (43200, "12:00:00"), (-3, "0:00:00"),
    (float("inf"), "?"), (float("nan"), "?"), (None, "?")])
def test_one_duration_format(seconds, text):
    assert format_duration(seconds) == text


def test_eta_of_a_rate():
    assert eta(120, 2.0) == "0:01:00"
    assert eta(5, 0.0) == "?"


def test_progress_prints_the_first_and_the_last_episode_and_counts_a_resume():
    lines = []
    progress = Progress(every_seconds=3600, log=lines.append)
    progress.start("tiny", 4, done=[{"accuracy": 1.0}])
    for done in (2, 3, 4):
        progress.update(done, 0.5)
    assert len(lines) == 2  # the first new episode and the last; none between (3600 s)
    assert lines[0].startswith("[tiny] 2/4 episodes ")
    assert lines[-1].startswith("[tiny] 4/4 episodes ") and "ETA 0:00:00" in lines[-1]
    assert lines[-1].endswith("running accuracy 62.50%")  # (1.0 + 3 x 0.5) / 4
