"""The exact statistics of the closed-form quoting strategies on the standard Avellaneda–Stoikov set-up.

No sampling: the forward recursion over the inventory distribution (``model/recursion.py``) gives the
mean and standard deviation of the P&L, the standard deviation of the terminal inventory and the mean
spread of the inventory strategy and of the symmetric strategy (γ = 0.1), the figures the README and
``docs/market_making.md`` quote beside the published 1,000-path estimates.

    python -m benchmarks.market_making_exact [--json]
"""

from __future__ import annotations

import argparse
import json

from decisionlab.domains.market_making.baselines import AvellanedaStoikov, Symmetric
from decisionlab.domains.market_making.model.recursion import exact_statistics
from decisionlab.domains.market_making.model.scenario import PRESETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    scenario = PRESETS["avellaneda_stoikov"]
    rows = {}
    for name, policy in (("avellaneda_stoikov", AvellanedaStoikov(scenario)), ("symmetric", Symmetric(scenario))):
        result = exact_statistics(scenario, policy)
        rows[name] = {"mean_pnl": result.mean_pnl, "std_pnl": result.std_pnl,
                      "std_terminal_inventory": result.std_terminal_inventory, "mean_spread": result.mean_spread}
    if args.json:
        print(json.dumps({"results": [{"policy": k, "metrics": v} for k, v in rows.items()]}))
        return
    print(f"{'strategy (exact)':<20} {'mean P&L':>9} {'std':>7} {'std q_T':>8} {'spread':>7}")
    for name, row in rows.items():
        print(f"{name:<20} {row['mean_pnl']:>9.2f} {row['std_pnl']:>7.2f} {row['std_terminal_inventory']:>8.2f} "
              f"{row['mean_spread']:>7.3f}")


if __name__ == "__main__":
    main()
