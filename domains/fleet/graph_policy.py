"""The learned fleet policy: graph encoders, a transformer over the forecast, an attention decoder.

:class:`FleetGraphNet` reads the simulator's flat features (``FeatureLayout`` unflattens them) and is
an actor-critic the core PPO trains as it is (it answers ``distribution``, ``value_logits`` and
``value`` like :class:`~decisionlab.core.nets.actor_critic.ActorCritic`):

1. **Aircraft → vertiports** (torch-geometric ``GATv2Conv``, bipartite): each vertiport attends over the
   aircraft on its pads or inbound (battery, time until free, charging, down).
2. **Forecast** (``nn.TransformerEncoder``): per vertiport, the ``4`` slots of expected departures, arrivals
   and fares ahead are a short sequence; the encoding is pooled over time.
3. **Vertiport graph** (two ``GATv2Conv`` layers with edge attributes: waiting seats, distance, closed
   now) over the complete graph.
4. **Decoder**: the deciding aircraft (its features, its vertiport's embedding, the clock) is the query of
   a multi-head attention over ``V`` destination keys (vertiport embedding + the edge from here + the
   immediate profit of going there) and a *stay* key; the glimpse scores each key (a pointer, as in
   attention routing models), masked by ``legal``. The critic reads the pooled graph and the query.

No weight depends on the number of vertiports or aircraft: :meth:`FleetGraphNet.resize` rebinds the
layout, so a policy trained on 8 vertiports / 40 aircraft acts on 12 / 60 without retraining.
Shapes: ``B`` rows, ``V`` vertiports, ``A`` aircraft, ``H`` the hidden width.
"""

from __future__ import annotations

import copy
import math
import warnings
import weakref
from typing import Any, ClassVar

import torch
from torch import nn
from torch_geometric.nn import GATv2Conv

from decisionlab.core import ActorCriticPolicy, MaskedCategorical, PolicyMismatchError
from decisionlab.domains.fleet.scenario import FleetScenario
from decisionlab.domains.fleet.sim import (
    AIRCRAFT_FEATURES,
    EDGE_FEATURES,
    FORECAST_SLOTS,
    GLOBAL_FEATURES,
    VERTIPORT_FEATURES,
    FeatureLayout,
    FleetSim,
)

SERIES_FEATURES = 3  # per forecast slot: seats leaving, seats arriving, fare-weighted seats leaving


def complete_graph(batch: int, nodes: int, device: torch.device) -> torch.Tensor:
    """``edge_index [2, B·N·(N−1)]`` of ``B`` complete directed graphs of ``N`` nodes, numbered row-major."""
    src, dst = torch.meshgrid(torch.arange(nodes, device=device), torch.arange(nodes, device=device), indexing="ij")
    keep = src != dst
    offset = (torch.arange(batch, device=device) * nodes)[:, None]
    return torch.stack([(src[keep][None, :] + offset).flatten(), (dst[keep][None, :] + offset).flatten()])


class FleetGraphNet(nn.Module):
    """Masked categorical over ``V + 1`` choices (``V``: stay) and a scalar value, from ``features [B, F]``."""

    discrete = True
    support = None  # a scalar value head
    categorical_value = False

    def __init__(self, n_vertiports: int, n_aircraft: int, hidden: int = 64, heads: int = 4) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
        self.hidden, self.heads = int(hidden), int(heads)
        self.resize(n_vertiports, n_aircraft)
        h = self.hidden
        self.vertiport_in = nn.Linear(VERTIPORT_FEATURES, h)
        self.aircraft_in = nn.Linear(AIRCRAFT_FEATURES, h)
        self.aircraft_to_port = GATv2Conv((h, h), h // heads, heads=heads, add_self_loops=False)
        self.series_in = nn.Linear(SERIES_FEATURES, h)
        self.slot_embedding = nn.Parameter(torch.zeros(FORECAST_SLOTS, h))
        self.forecast = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(h, heads, dim_feedforward=2 * h, dropout=0.0, batch_first=True), num_layers=1)
        self.graph = nn.ModuleList([GATv2Conv(h, h // heads, heads=heads, edge_dim=EDGE_FEATURES) for _ in range(2)])
        self.norms = nn.ModuleList([nn.LayerNorm(h) for _ in range(2)])
        self.query = nn.Sequential(nn.Linear(AIRCRAFT_FEATURES + h + GLOBAL_FEATURES, h), nn.Tanh(), nn.Linear(h, h))
        self.key = nn.Linear(h + EDGE_FEATURES + 1, h)
        self.stay_key = nn.Linear(h, h)
        self.attention = nn.MultiheadAttention(h, heads, batch_first=True)
        self.pointer = nn.Linear(h, h, bias=False)
        self.critic = nn.Sequential(nn.Linear(2 * h + GLOBAL_FEATURES, h), nn.Tanh(), nn.Linear(h, h), nn.Tanh(),
                                    nn.Linear(h, 1))

    # -- the layout it reads ----------------------------------------------------------------------------------
    def resize(self, n_vertiports: int, n_aircraft: int) -> FleetGraphNet:
        """Read features of ``n_vertiports`` / ``n_aircraft`` from now on (the weights stay)."""
        self.layout = FeatureLayout(int(n_vertiports), int(n_aircraft))
        self.obs_dim, self.action_dim = self.layout.width, self.layout.n_vertiports + 1
        return self

    # -- encoders ---------------------------------------------------------------------------------------------
    def encode(self, features: torch.Tensor, dense: bool = False
               ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """``(parts, vertiport embeddings [B, V, H], query [B, H])``; ``dense``: the graph convolutions as dense
        tensor algebra (:func:`dense_gatv2`, the same function; fewer, larger operators: the inference path)."""
        parts = self.layout.split(features)
        b, v, a, h = features.shape[0], self.layout.n_vertiports, self.layout.n_aircraft, self.hidden
        dev = features.device
        ports = self.vertiport_in(parts["vertiports"])  # [B, V, H]
        planes = self.aircraft_in(parts["aircraft"])  # [B, A, H]
        location = parts["aircraft_location"].round().long().clamp(0, v - 1)  # [B, A]
        if dense:
            at_port = location[:, :, None] == torch.arange(v, device=dev)  # [B, A, V]: aircraft a → its vertiport
            ports = ports + dense_gatv2(self.aircraft_to_port, planes, ports, at_port)
        else:
            aircraft_edges = torch.stack([torch.arange(b * a, device=dev),
                                          (location + (torch.arange(b, device=dev) * v)[:, None]).flatten()])
            ports = ports + self.aircraft_to_port((planes.reshape(b * a, h), ports.reshape(b * v, h)),
                                                  aircraft_edges).reshape(b, v, h)
        forecast = parts["forecast"]  # [B, 4, V, V] seats per slot and pair
        distance = parts["edges"][..., 1]  # [B, V, V] distance / map side
        series = torch.stack([forecast.sum(-1), forecast.sum(-2), (forecast * distance[:, None]).sum(-1)], dim=-1)
        tokens = self.series_in(series.permute(0, 2, 1, 3).reshape(b * v, FORECAST_SLOTS, SERIES_FEATURES))
        ports = ports + self.forecast(tokens + self.slot_embedding).mean(1).reshape(b, v, h)
        off_diagonal = ~torch.eye(v, dtype=torch.bool, device=dev)
        if dense:
            # edge j → i carries edges[b, j, i]; GATv2Conv's self loop carries the mean of i's incoming edges
            incoming = parts["edges"].masked_fill(~off_diagonal[None, :, :, None], 0.0).sum(1) / max(v - 1, 1)
            attr = torch.where(off_diagonal[None, :, :, None], parts["edges"], incoming[:, None])  # [B, V, V, 3]
            everyone = torch.ones(1, v, v, dtype=torch.bool, device=dev)
            for conv, norm in zip(self.graph, self.norms, strict=True):
                ports = norm(ports + torch.relu(dense_gatv2(conv, ports, ports, everyone, attr)))
        else:
            edge_index = complete_graph(b, v, dev)
            edge_attr = parts["edges"][:, off_diagonal].reshape(b * v * (v - 1), EDGE_FEATURES)
            x = ports.reshape(b * v, h)
            for conv, norm in zip(self.graph, self.norms, strict=True):
                x = norm(x + torch.relu(conv(x, edge_index, edge_attr)))
            ports = x.reshape(b, v, h)
        rows = torch.arange(b, device=dev)
        glob = parts["global"]
        here, actor = glob[:, 2].round().long().clamp(0, v - 1), glob[:, 3].round().long().clamp(0, a - 1)
        query = self.query(torch.cat([parts["aircraft"][rows, actor], ports[rows, here], glob], dim=1))
        return parts, ports, query

    def logits(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logits [B, V + 1], pooled graph [B, H], query [B, H])``; without autograd, the last input's
        outputs are kept (a rollout asks for the distribution and the value of the same features), and the
        forward pass runs as a TorchScript trace (:func:`traced_logits`)."""
        if torch.is_grad_enabled():
            return self._logits(features)
        if features.is_inference():  # inference tensors keep no version to key the cache on
            return traced_logits(self, features)
        cached = getattr(self, "_cached", None)
        if cached is not None and cached[0] is features and cached[1] == features._version:
            return cached[2]
        out = traced_logits(self, features)
        self._cached = (features, features._version, out)
        return out

    def _logits(self, features: torch.Tensor, dense: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        parts, ports, query = self.encode(features, dense)
        b, v = ports.shape[:2]
        rows = torch.arange(b, device=features.device)
        here = parts["global"][:, 2].round().long().clamp(0, v - 1)
        edge_here = parts["edges"][rows, here]  # [B, V, 3] from the actor's vertiport
        keys = self.key(torch.cat([ports, edge_here, parts["profit_here"][..., None]], dim=-1))  # [B, V, H]
        keys = torch.cat([keys, self.stay_key(ports[rows, here])[:, None]], dim=1)  # [B, V + 1, H]
        glimpse, _ = self.attention(query[:, None], keys, keys, key_padding_mask=~parts["legal"].bool())
        scores = (self.pointer(glimpse) * keys).sum(-1) / math.sqrt(self.hidden)  # [B, V + 1]
        return 10.0 * torch.tanh(scores), ports.mean(1), query

    # -- what PPO and the policy call -------------------------------------------------------------------------
    def distribution(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> MaskedCategorical:
        logits, _, _ = self.logits(features)
        return MaskedCategorical(logits, mask)

    def value_logits(self, features: torch.Tensor) -> torch.Tensor:
        _, pooled, query = self.logits(features)
        glob = self.layout.split(features)["global"]
        return self.critic(torch.cat([pooled, query, glob], dim=1)).squeeze(-1)

    def value(self, features: torch.Tensor) -> torch.Tensor:
        return self.value_logits(features)

    @torch.no_grad()
    def act(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.distribution(features, mask).mode()

    def config(self) -> dict[str, Any]:
        return {"kind": "fleet_graph_net", "n_vertiports": self.layout.n_vertiports,
                "n_aircraft": self.layout.n_aircraft, "hidden": self.hidden, "heads": self.heads}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FleetGraphNet:
        return cls(**{k: v for k, v in config.items() if k != "kind"})


def dense_gatv2(conv: GATv2Conv, source: torch.Tensor, target: torch.Tensor, edge: torch.Tensor,
                edge_attr: torch.Tensor | None = None) -> torch.Tensor:
    """``conv`` (torch-geometric's ``GATv2Conv``, heads concatenated, no residual) on ``B`` small graphs held
    densely: ``source [B, S, H_in]`` and ``target [B, T, H_in]`` node features, ``edge [B or 1, S, T]`` bool (an
    edge from source ``j`` to target ``i``; self loops are the caller's), ``edge_attr [B, S, T, E]`` or None.
    Returns ``[B, T, heads · C]``; a target without an incoming edge gets the bias alone, as in the sparse pass.

    The same function as ``conv(x, edge_index, edge_attr)`` (a test checks it against that); it costs
    ``B·S·T·heads·C`` work instead of per-edge gathers and scatters, fewer operators for small graphs."""
    b, n_src, n_dst = source.shape[0], source.shape[1], target.shape[1]
    heads, c = conv.heads, conv.out_channels
    x_l = conv.lin_l(source).view(b, n_src, 1, heads, c)
    x_r = conv.lin_r(target).view(b, 1, n_dst, heads, c)
    x = x_l + x_r  # [B, S, T, heads, C]
    if edge_attr is not None:
        x = x + conv.lin_edge(edge_attr).view(b, n_src, n_dst, heads, c)
    scores = (nn.functional.leaky_relu(x, conv.negative_slope) * conv.att).sum(-1)  # [B, S, T, heads]
    scores = scores.masked_fill(~edge[..., None], -math.inf)
    alpha = torch.softmax(scores, dim=1).nan_to_num(0.0)  # over the sources of each target; none: all 0
    out = torch.einsum("bsth,bshc->bthc", alpha, x_l[:, :, 0])
    return out.reshape(b, n_dst, heads * c) + conv.bias


DENSE_ROWS = 16
"""Batches up to this many rows trace the dense graph convolutions: at 8 vertiports / 40 aircraft on one core,
0.40 against 0.48 ms at 1 row, 1.0 against 1.1 ms at 8; from 64 rows the sparse pass is faster (6 against 12 ms)."""


class _Forward(nn.Module):
    """What :func:`torch.jit.trace` records: the net's gradient-free forward pass (``dense`` or sparse)."""

    def __init__(self, net: FleetGraphNet, dense: bool) -> None:
        super().__init__()
        self.net, self.dense = net, dense

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.net._logits(features, dense=self.dense)


_TRACES: weakref.WeakKeyDictionary[FleetGraphNet, dict[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()
"""Per net, its traces by (layout, input shape, dtype, device); ``None``: that key runs eagerly."""


def traced_logits(net: FleetGraphNet, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``net._logits(features)`` without autograd, through a trace of it for this input's shape.

    A decision at batch 1 is ~200 small operators; the eager interpreter's overhead per operator is most of
    its time (1.1 ms against 0.48 ms traced on one core, 0.40 ms traced with the dense graph convolutions
    that small batches use: :data:`DENSE_ROWS`). A trace fixes the shapes, so there is one per
    layout and input shape; it keeps the net's parameter tensors, so in-place updates (an optimiser's step,
    ``load_state_dict``) reach it. It is checked against the eager pass on the input it was traced on, and a
    shape whose trace disagrees runs eagerly from then on."""
    layout = net.layout
    key = (layout.n_vertiports, layout.n_aircraft, tuple(features.shape), features.dtype, features.device,
           net.training)
    traces = _TRACES.setdefault(net, {})
    if key not in traces:
        if len(traces) >= 16:  # a bounded cache: batch sizes vary in training
            traces.pop(next(iter(traces)))
        eager = net._logits(features)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer warns about Python values it records as constants
            try:
                traced = torch.jit.trace(_Forward(net, features.shape[0] <= DENSE_ROWS), features,
                                         check_trace=False)
            except RuntimeError:
                traced = None
        if traced is not None:
            again = traced(features)
            if not all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(again, eager, strict=True)):
                traced = None
        traces[key] = traced
        return eager
    traced = traces[key]
    return net._logits(features) if traced is None else traced(features)


class FleetGraphPolicy(ActorCriticPolicy):
    """The learned kind ``fleet_graph``: a :class:`FleetGraphNet` bound to a scenario's simulator; acts
    on any fleet size and vertiport count (:meth:`for_scenario` resizes, the weights stay)."""

    kind: ClassVar[str] = "fleet_graph"

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "net": self.net.config()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FleetGraphPolicy:
        return cls(FleetGraphNet.from_config(config["net"]), name=config.get("name", "ppo"))

    @classmethod
    def initial(cls, scenario: FleetScenario, device: torch.device, hidden: int = 64, heads: int = 4
                ) -> FleetGraphPolicy:
        net = FleetGraphNet(scenario.n_vertiports, scenario.n_aircraft, hidden, heads).to(device)
        return cls(net, FleetSim(scenario, device), name="ppo")

    def for_scenario(self, scenario: Any) -> FleetGraphPolicy:
        if not isinstance(scenario, FleetScenario):
            raise PolicyMismatchError(f"a fleet_graph policy acts in fleet scenarios, not {type(scenario).__name__}")
        if (scenario.n_vertiports, scenario.n_aircraft) == (self.net.layout.n_vertiports, self.net.layout.n_aircraft):
            return self.bind(FleetSim(scenario, next(self.net.parameters()).device))
        # another network: a shallow copy shares the weights and reads the other layout (self is unchanged)
        net = copy.copy(self.net).resize(scenario.n_vertiports, scenario.n_aircraft)
        net._cached = None
        return type(self)(net, FleetSim(scenario, next(net.parameters()).device), name=self.name)
