"""Fleet scheduling: an eVTOL fleet across vertiports (issue in progress).

The simulator, the day sampler, the baselines ``random`` and ``greedy`` and the rule checker are here;
the domain registers itself (CLI, API, dashboard, conformance) once its learned policy, planning
baselines and serving are in, so that it passes the conformance suite the day it registers.
"""
