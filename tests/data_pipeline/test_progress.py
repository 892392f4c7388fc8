"""The progress bar: rate and time left for even steps, elapsed time for phases."""

import io

from data_pipeline.progress import Progress, format_seconds


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_even_steps_show_rate_and_time_left():
    out = io.StringIO()
    bar = Progress("judge char", 100, "steps", stream=out)
    bar.update(40, force=True)
    line = out.getvalue().splitlines()[-1]
    assert line.startswith("judge char [########............] 40/100 ") and "steps/s left" in line


def test_phases_show_elapsed_time_one_line_each_also_on_a_terminal():
    out = _Tty()
    phases = Progress("evaluate", 5, "phases", stream=out, rate=False)
    phases.update(0, extra="reading real glyphs", force=True)
    phases.update(1, extra="char judge", force=True)
    lines = out.getvalue().replace("\r", "").splitlines()
    assert [ln.strip() for ln in lines] == ["evaluate 0/5 phases elapsed 0:00 reading real glyphs",
                                           "evaluate 1/5 phases elapsed 0:00 char judge"]
    assert "left" not in out.getvalue()  # no time-left guess from phases of unequal length


def test_format_seconds():
    assert (format_seconds(59.4), format_seconds(61), format_seconds(3725)) == (
        "0:59", "1:01", "1:02:05")
