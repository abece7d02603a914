"""The ``lob_replay`` setting of market making: quotes filled by queue position against replayed order-book data.

Modules:

- :mod:`.data`: LOBSTER and tardis-style readers (validated, cached) into one representation on a
  regular clock (:class:`~.data.ReplayData`: L best levels per side at each step, traded volume
  during each step by aggressor side and price);
- :mod:`.generate_sample`: the SYNTHETIC queue-reactive sample shipped in ``sample/`` and the
  generator that rewrites it bit-identically;
- :mod:`.synthetic_days`: the longer SYNTHETIC set of the ``lob_replay_days`` preset (32.5 h of the same
  generator), generated on first use into the cache;
- :mod:`.scenario`: :class:`~.scenario.ReplayScenario` (data, clock, latency, queue model, fees,
  train/held-out split, disjoint evaluation windows) and the presets;
- :mod:`.sim`: :class:`~.sim.ReplaySim`, the batched simulator (order of events in its docstring);
- :mod:`.calibration`: σ, A and k of the data for the closed-form baselines.
"""
