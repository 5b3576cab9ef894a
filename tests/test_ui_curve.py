"""The learning curve's panel: the chart draws the curve with interval bands against RAG's flat line, the run
asks first when it is estimated over ten minutes, and a finished run shows its chart and sentence."""

from __future__ import annotations

from lab.arena import learning_curve as lc
from lab.arena.timing import Forecast
from lab.estimate import Estimate, Machine
from lab.ui import start_curve

CURVE = lc.curve({0.25: [1.0] * 3 + [0.0] * 17, 0.5: [1.0] * 8 + [0.0] * 12, 1.0: [1.0] * 16 + [0.0] * 4},
                 flat=[1.0] * 10 + [0.0] * 10, bootstrap=200) | {"questions": 20}  # fmt: skip


def test_the_chart_has_the_curve_its_band_and_rags_flat_line():
    fig = start_curve.chart(CURVE)
    ax = fig.axes[0]
    line, flat = ax.lines
    assert list(line.get_ydata()) == [15.0, 40.0, 80.0] and list(line.get_xdata()) == [25.0, 50.0, 100.0]
    assert list(flat.get_ydata()) == [50.0, 50.0] and len(ax.collections) == 2  # two interval bands
    assert [t.get_text() for t in ax.get_xticklabels()] == ["25%", "50%", "100%"]
    assert start_curve.shown(None) == (None, "")


def _forecast(seconds):
    stages = [
        (s, label, Estimate(seconds, seconds * 0.8, seconds * 1.2)) for s, label in lc.stage_list(lc.CurveInputs())
    ]
    return Forecast(stages, Machine(2), 50)


def test_a_long_curve_asks_first_and_a_confirmed_one_runs_and_shows_its_chart(ws, monkeypatch):
    outs = ("progress", "plot", "said", "button", "armed")
    ran = []
    monkeypatch.setattr(lc, "forecast", lambda ws, inputs: _forecast(200.0))
    monkeypatch.setattr(
        lc, "run_curve", lambda *a, **k: ran.append(k) or {"status": "finished", "curve": CURVE | {"total_s": 90.0}}
    )

    class Request:
        session_hash = "s1"

    inputs = lc.CurveInputs()
    first = list(start_curve._run(ws, None, start_curve.SessionFlags(ws.tmp / "c"), inputs, "", Request(), outs))
    assert len(first) == 1 and "Not started" in first[0]["progress"] and first[0]["armed"] == repr(inputs) and not ran
    again = list(
        start_curve._run(ws, None, start_curve.SessionFlags(ws.tmp / "c"), inputs, repr(inputs), Request(), outs)
    )
    assert len(ran) == 1 and ran[0]["plan"].total.seconds == 1400.0
    assert "Done in 1.5 min" in again[-1]["progress"] and lc.NO_TREND not in again[-1]["said"]
    assert "more data helps" in again[-1]["said"] and again[-1]["plot"] is not None
