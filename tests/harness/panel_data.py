"""Whether dashboard panels have data: Grafana's variables substituted, then
every query polled on a real store until it answers with numbers (that move,
for rates) or the traffic deadline passes."""
from __future__ import annotations

import math
import time

# What Grafana substitutes with "All" selected (allValue .*), the default
# time range (now-1h) and $__rate_interval >= 4 scrape intervals.
GRAFANA_BUILTINS = {"$__rate_interval": "15s", "$__range": "1h", "$instance": ".*", "$job": ".*"}
MIN_TRAFFIC = 15.0  # seconds of traffic before the first evaluation: one whole $__rate_interval
ZERO_IS_HEALTHY = {"State source errors"}  # panel titles whose rates are 0 on a healthy stack


def grafana_expr(expr: str) -> str:
    """``expr`` as Grafana sends it with every variable on "All"."""
    for variable in sorted(GRAFANA_BUILTINS, key=len, reverse=True):
        expr = expr.replace(variable, GRAFANA_BUILTINS[variable])
    assert "$" not in expr, f"a template variable the test does not know: {expr}"
    return expr


def must_move(title: str, expr: str) -> bool:
    """Rates and increases must be positive under traffic, except where 0 is health."""
    return ("rate(" in expr or "increase(" in expr) and title not in ZERO_IS_HEALTHY


def no_data_problem(store, expr: str, moving: bool = False) -> str | None:
    """None when the query returns at least one number (a positive one if
    ``moving``), else what it returned."""
    result = store.query(expr)
    if not result:
        return "no data"
    values = [float(series["value"][1]) for series in result]
    if all(math.isnan(v) for v in values):
        return f"only NaN ({len(values)} series)"
    if moving and not any(v > 0 for v in values):
        return f"only zeros ({len(values)} series): the traffic did not move it"
    return None


def await_data(store, pending: dict, started: float, deadline: float, procs, worker: str) -> None:
    """Evaluate ``pending`` ({where: (expr, must move)}) on ``store`` every 2 s, once
    MIN_TRAFFIC seconds of traffic have passed, until all have data or ``deadline``
    seconds of traffic are over; then fail naming each query still without data."""
    time.sleep(max(0.0, MIN_TRAFFIC - (time.monotonic() - started)))
    problems = {}
    while pending and time.monotonic() - started < deadline:
        procs.check_alive()
        problems = {where: problem for where, (expr, moving) in pending.items()
                    if (problem := no_data_problem(store, expr, moving))}
        pending = {where: pending[where] for where in problems}
        if pending:
            time.sleep(2)
    assert not pending, (f"queries without data after {deadline:.0f}s of traffic:\n"
                         + "\n".join(f"  {where}: {problems[where]}\n    {pending[where][0]}"
                                     for where in sorted(pending))
                         + "\nworker log tail:\n" + procs.tail(worker, 1500))
