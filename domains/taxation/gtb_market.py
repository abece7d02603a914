"""The continuous double auction of the Foundation (``ContinuousDoubleAuction``), one per resource, batched
over economies.

A worker's open orders for a resource live in ``M`` slots (``max_num_orders``: its bids and asks
together); a bid sets its price in coin aside (escrow), an ask one unit of the resource. Matching follows
the Foundation: bids rank by price (highest first), then age (oldest first), then worker; asks by price
(lowest first), then age, then worker. Repeatedly, the best-ranked bid that crosses the best-ranked ask
of another worker trades with it, at the price of the earlier of the two orders (the ask's on a tie); the
buyer gets the unit and the rest of its escrow back, the seller the price. An order unfilled
``order_duration`` steps after the step it was placed in expires and its escrow returns.

Each order is one int32 rank key, smaller first: ``(p << 21) | (left << 11) | slot`` with ``p`` the ask's
price or ``max_bid_ask − price`` for a bid, ``left`` the steps before it expires (``order_duration −
age``: older orders rank first) and ``slot = worker·M + m`` (ties go to the lower worker); :data:`EMPTY`
is a free slot. Matching then is minima of keys, and everything stays integer arithmetic (the bit
tricks below replace comparisons and ``where``, which cost several times more on CPU tensors this
size). Shapes: ``bids``, ``asks`` ``[B, 2, A·M]`` (resource, slot); per worker ``[B, A]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

EMPTY = (1 << 31) - 1
"""The key of a free slot: above every order's (bit 30 set; all lower bits set, so ``key | EMPTY = EMPTY``)."""
PRICE_SHIFT, LEFT_SHIFT = 21, 11
LEFT_MASK, SLOT_MASK = (1 << 10) - 1, (1 << 11) - 1
MAX_PRICE, MAX_DURATION, MAX_SLOTS = (1 << 7) - 1, LEFT_MASK, SLOT_MASK + 1
"""What the key has room for: prices up to 127, durations up to 1,023 steps, A·M up to 2,048 slots."""
OUT = 1 << 30
"""A bit no order's key has (keys stay below 2^28): set on the bids that cannot trade this round."""


@dataclass(frozen=True)
class Book:
    """The open orders, ``bids``/``asks [B, 2, A·M]`` int32 keys (module docstring)."""

    bids: torch.Tensor
    asks: torch.Tensor

    @staticmethod
    def empty(batch: int, agents: int, slots: int, device: torch.device) -> Book:
        free = torch.full((batch, 2, agents * slots), EMPTY, dtype=torch.int32, device=device)
        return Book(free, free)


@dataclass(frozen=True)
class Holdings:
    """Per worker what its open orders hold: ``bids``/``asks [B, 2, A]`` (open orders per resource),
    ``coin [B, A]`` (the bids' escrow) and ``goods [B, A, 2]`` (the asks' units)."""

    bids: torch.Tensor
    asks: torch.Tensor
    coin: torch.Tensor
    goods: torch.Tensor


def is_open(keys: torch.Tensor) -> torch.Tensor:
    """0/1 int32: the slot holds an order (EMPTY has bit 30, orders do not)."""
    return 1 - (keys >> 30)


def per_worker(values: torch.Tensor, agents: int) -> torch.Tensor:
    """``[B, 2, A]`` sums over each worker's slots of ``values [B, 2, A·M]``."""
    return values.view(values.shape[0], 2, agents, -1).sum(-1, dtype=torch.int32)


def by_resource(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, 2, A]`` → ``([B, A] total, [B, A, 2] per resource)`` (slices, not reductions: torch reduces
    tiny trailing axes slowly on CPU)."""
    wood, stone = values[:, 0], values[:, 1]
    return wood + stone, torch.stack([wood, stone], -1)


def holdings(book: Book, agents: int, top_price: int) -> Holdings:
    """What each worker has in the book."""
    bid, ask = is_open(book.bids), is_open(book.asks)
    coin, _ = by_resource(per_worker((top_price - (book.bids >> PRICE_SHIFT)) * bid, agents))
    bids, asks = per_worker(bid, agents), per_worker(ask, agents)
    return Holdings(bids, asks, coin.double(), by_resource(asks)[1].long())


def place(book: Book, placing: torch.Tensor, resource: torch.Tensor, ask: torch.Tensor, price: torch.Tensor,
          duration: int, top_price: int) -> Book:
    """``book`` with the orders of the workers where ``placing [B, A]`` (of ``resource``, ``ask`` or bid,
    ``price`` ``[B, A]``) in their first free slot of that resource (the caller checked there is one)."""
    batch, _, width = book.bids.shape
    agents = placing.shape[1]
    slots = width // agents
    free = ((book.bids & book.asks) >> 30).view(batch, 2, agents, slots)  # 1 where both are EMPTY
    free = free.gather(1, resource[:, None, :, None].expand(batch, 1, agents, slots))[:, 0]  # [B, A, M]
    m = free.argmax(-1)  # the first free slot (ties: the lowest index)
    slot = torch.arange(agents, device=placing.device) * slots + m
    index = resource * width + slot  # into the flattened [B, 2·A·M]
    p = torch.where(ask, price, top_price - price)
    key = ((p << PRICE_SHIFT) | (duration << LEFT_SHIFT) | slot).int()

    def put(keys: torch.Tensor, mine: torch.Tensor) -> torch.Tensor:
        flat = keys.reshape(batch, -1)
        return flat.scatter(1, index, torch.where(mine, key, flat.gather(1, index))).view(keys.shape)

    return Book(put(book.bids, placing & ~ask), put(book.asks, placing & ask))


@dataclass(frozen=True)
class Fills:
    """What matching did: ``coin [B, A]`` received by each worker (sellers' prices, buyers' refunds of the
    escrow above the price), ``goods [B, A, 2]`` units bought, ``trades [B]`` and ``volume [B]`` (coin)."""

    coin: torch.Tensor
    goods: torch.Tensor
    trades: torch.Tensor
    volume: torch.Tensor


def match(book: Book, agents: int, top_price: int, rounds: int) -> tuple[Book, Fills]:
    """Trade every crossing pair of orders of different workers (module docstring), one trade per resource
    a round. ``rounds`` bounds the trades of a step: every trade involves an order placed this step (the
    book was uncrossed after the previous one), so the number of workers is enough."""
    batch, _, width = book.bids.shape
    slots, device = width // agents, book.bids.device
    others = torch.full((agents, agents), 0, dtype=torch.int32, device=device).fill_diagonal_(EMPTY)
    bids, asks = book.bids, book.asks
    coin = torch.zeros(batch, agents, dtype=torch.float64, device=device)
    goods = torch.zeros(batch, 2, agents, dtype=torch.long, device=device)
    trades = torch.zeros(batch, 2, dtype=torch.long, device=device)
    volume = torch.zeros(batch, 2, dtype=torch.long, device=device)
    for _ in range(rounds):
        best = asks.view(batch, 2, agents, slots).amin(-1)  # [B, 2, A] each seller's best ask
        other = (best[:, :, None, :] | others).amin(-1)  # [B, 2, A] the best ask of another worker
        # a bid crosses when its price reaches that ask's: (top − p_bid) − p_ask ≥ 0; the others get OUT
        gap = (top_price - (other >> PRICE_SHIFT))[..., None] - (bids.view(batch, 2, agents, slots) >> PRICE_SHIFT)
        chosen = (bids.view(batch, 2, agents, slots) | ((gap >> 31) & OUT)).view(batch, 2, width).amin(-1)
        matched = chosen < OUT  # [B, 2]
        if not bool(matched.any()):
            break
        bid_slot = ((chosen & SLOT_MASK) * matched).long()  # slot 0 where nothing trades (left as it is)
        buyer = bid_slot // slots
        sold = other.gather(-1, buyer[..., None])[..., 0]
        ask_slot = ((sold & SLOT_MASK) * matched).long()
        seller = ask_slot // slots
        bid_price, ask_price = top_price - (chosen >> PRICE_SHIFT), sold >> PRICE_SHIFT
        # the earlier order sets the price; fewer steps left = placed earlier (the ask on a tie)
        bid_first = ((chosen >> LEFT_SHIFT) & LEFT_MASK) < ((sold >> LEFT_SHIFT) & LEFT_MASK)
        deal = torch.where(bid_first, bid_price, ask_price).long() * matched
        bids, asks = (keys.scatter(2, at[..., None], keys.gather(2, at[..., None]) | (matched.int()[..., None] * EMPTY))
                      for keys, at in ((bids, bid_slot), (asks, ask_slot)))
        coin = coin.scatter_add(1, seller, deal.double()).scatter_add(1, buyer, ((bid_price - deal) * matched).double())
        goods = goods.scatter_add(2, buyer[..., None], matched.long()[..., None])
        trades, volume = trades + matched, volume + deal
    return Book(bids, asks), Fills(coin, by_resource(goods)[1], (trades[:, 0] + trades[:, 1]).double(),
                                   (volume[:, 0] + volume[:, 1]).double())


def expire(book: Book, agents: int, top_price: int) -> tuple[Book, torch.Tensor, torch.Tensor]:
    """One step older: orders with no steps left expire, the rest lose one. Returns ``(book, coin [B, A],
    goods [B, A, 2])``, the escrow given back."""

    def age(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        live = is_open(keys)
        ended = live & ((((keys >> LEFT_SHIFT) & LEFT_MASK) - 1) >> 31)  # live with 0 steps left
        return (keys - ((live - ended) << LEFT_SHIFT)) | (-ended & EMPTY), ended

    bids, bid_ended = age(book.bids)
    asks, ask_ended = age(book.asks)
    coin, _ = by_resource(per_worker((top_price - (book.bids >> PRICE_SHIFT)) * bid_ended, agents))
    return Book(bids, asks), coin.double(), by_resource(per_worker(ask_ended, agents))[1].long()


def quotes(book: Book, agents: int, top_price: int) -> torch.Tensor:
    """``[B, A, 4]`` per worker the best wood bid, wood ask, stone bid and stone ask of the other workers
    (price ÷ ``top_price``; −1 where there is none)."""
    batch = book.bids.shape[0]
    others = torch.zeros(agents, agents, dtype=torch.int32, device=book.bids.device).fill_diagonal_(EMPTY)
    out = []
    for keys, is_bid in ((book.bids, True), (book.asks, False)):
        best = (keys.view(batch, 2, agents, -1).amin(-1)[:, :, None, :] | others).amin(-1)  # [B, 2, A]
        p = (best >> PRICE_SHIFT).double()
        out.append(torch.where(best < OUT, (top_price - p if is_bid else p) / top_price, -1.0))
    return torch.stack([out[0][:, 0], out[1][:, 0], out[0][:, 1], out[1][:, 1]], -1)
