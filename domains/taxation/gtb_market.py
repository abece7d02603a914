"""The continuous double auction of the Foundation (``ContinuousDoubleAuction``), one per resource, batched
over economies.

A worker's open orders for a resource live in ``M`` slots (``max_num_orders``: its bids and asks
together); a bid sets its price in coin aside (escrow), an ask one unit of the resource. Matching follows
the Foundation: bids rank by price (highest first), then age (oldest first), then worker; asks by price
(lowest first), then age, then worker. Repeatedly, the best-ranked bid that crosses the best-ranked ask
of another worker trades with it, at the price of the earlier of the two orders (the ask's on a tie); the
buyer gets the unit and the rest of its escrow back, the seller the price. An order unfilled
``order_duration`` steps after the step it was placed in expires and its escrow returns.

Each order is one integer rank key, smaller first: ``(p << price_shift) | (left << slot_bits) | slot`` with
``p`` the ask's price or ``max_bid_ask − price`` for a bid, ``left`` the steps before it expires
(``order_duration − age``: older orders rank first) and ``slot = worker·M + m`` (ties go to the lower
worker); the layout's ``empty`` is a free slot. Matching then is minima of keys, and everything stays integer
arithmetic (the bit tricks below replace comparisons and ``where``, which cost several times more on CPU
tensors this size). Books of up to 2,048 slots use int32 keys (:data:`NARROW`, half the memory traffic of
int64); larger ones int64 keys with room for 2^20 slots (:data:`WIDE`). Shapes: ``bids``, ``asks``
``[B, 2, A·M]`` (resource, slot); per worker ``[B, A]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

LEFT_BITS, PRICE_BITS = 10, 7
MAX_PRICE, MAX_DURATION = (1 << PRICE_BITS) - 1, (1 << LEFT_BITS) - 1
"""What every key has room for: prices up to 127, durations up to 1,023 steps."""
SMALL_BOOK = 64
"""Up to this many workers, the best order of the *other* workers is a masked minimum over ``[A, A]`` (fastest
for few workers); above it, the best and second-best of all (``O(A)``)."""


@dataclass(frozen=True)
class KeyLayout:
    """The bit layout of one key width (``bits`` 32 or 64): the fields' shifts and masks, ``empty`` (above
    every order's key: the bit below the sign set and every lower bit, so ``key | empty = empty``), ``out``
    (that bit alone: set on the bids that cannot trade this round) and ``sign`` (the shift that turns a
    difference into 0 or −1)."""

    dtype: torch.dtype
    bits: int
    slot_bits: int

    @property
    def slot_mask(self) -> int:
        return (1 << self.slot_bits) - 1

    @property
    def max_slots(self) -> int:
        return 1 << self.slot_bits

    @property
    def price_shift(self) -> int:
        return self.slot_bits + LEFT_BITS

    @property
    def sign(self) -> int:
        return self.bits - 1

    @property
    def out_bit(self) -> int:
        return self.bits - 2

    @property
    def out(self) -> int:
        return 1 << self.out_bit

    @property
    def empty(self) -> int:
        return (1 << self.sign) - 1


NARROW = KeyLayout(torch.int32, 32, 11)
WIDE = KeyLayout(torch.int64, 64, 20)
MAX_SLOTS = WIDE.max_slots
"""The most slots (``n_agents · max_num_orders``) a book holds."""
LEFT_MASK = MAX_DURATION


def layout_for(slots: int) -> KeyLayout:
    """The narrowest layout with room for ``slots`` order slots."""
    if slots > MAX_SLOTS:
        raise ValueError(f"an order book holds at most {MAX_SLOTS:,} slots (n_agents · max_num_orders), not {slots:,}")
    return NARROW if slots <= NARROW.max_slots else WIDE


def layout_of_dtype(dtype: torch.dtype) -> KeyLayout:
    return WIDE if dtype == torch.int64 else NARROW


def layout_of(keys: torch.Tensor) -> KeyLayout:
    return layout_of_dtype(keys.dtype)


@dataclass(frozen=True)
class Book:
    """The open orders, ``bids``/``asks [B, 2, A·M]`` keys (module docstring; int32 or int64)."""

    bids: torch.Tensor
    asks: torch.Tensor

    @staticmethod
    def empty(batch: int, agents: int, slots: int, device: torch.device, layout: KeyLayout | None = None) -> Book:
        """A book with no orders, in ``layout`` (default: the narrowest with room for ``agents · slots``)."""
        layout = layout or layout_for(agents * slots)
        free = torch.full((batch, 2, agents * slots), layout.empty, dtype=layout.dtype, device=device)
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
    """0/1 (the keys' dtype): the slot holds an order (an empty key has the out bit, orders do not)."""
    return 1 - (keys >> layout_of(keys).out_bit)


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
    layout = layout_of(book.bids)
    bid, ask = is_open(book.bids), is_open(book.asks)
    coin, _ = by_resource(per_worker((top_price - (book.bids >> layout.price_shift)) * bid, agents))
    bids, asks = per_worker(bid, agents), per_worker(ask, agents)
    return Holdings(bids, asks, coin.double(), by_resource(asks)[1].long())


def place(book: Book, placing: torch.Tensor, resource: torch.Tensor, ask: torch.Tensor, price: torch.Tensor,
          duration: int, top_price: int) -> Book:
    """``book`` with the orders of the workers where ``placing [B, A]`` (of ``resource``, ``ask`` or bid,
    ``price`` ``[B, A]``) in their first free slot of that resource (the caller checked there is one)."""
    layout = layout_of(book.bids)
    batch, _, width = book.bids.shape
    agents = placing.shape[1]
    slots = width // agents
    free = ((book.bids & book.asks) >> layout.out_bit).view(batch, 2, agents, slots)  # 1 where both are empty
    free = free.gather(1, resource[:, None, :, None].expand(batch, 1, agents, slots))[:, 0]  # [B, A, M]
    m = free.argmax(-1)  # the first free slot (ties: the lowest index)
    slot = torch.arange(agents, device=placing.device) * slots + m
    index = resource * width + slot  # into the flattened [B, 2·A·M]
    p = torch.where(ask, price, top_price - price)
    key = ((p << layout.price_shift) | (duration << layout.slot_bits) | slot).to(layout.dtype)

    def put(keys: torch.Tensor, mine: torch.Tensor) -> torch.Tensor:
        flat = keys.reshape(batch, -1)
        return flat.scatter(1, index, torch.where(mine, key, flat.gather(1, index))).view(keys.shape)

    return Book(put(book.bids, placing & ~ask), put(book.asks, placing & ask))


def per_worker_min(keys: torch.Tensor, agents: int) -> torch.Tensor:
    """``[B, 2, A]``: each worker's smallest key of ``keys [B, 2, A·M]``. int64 keys go by elementwise minima
    over the M slots: torch's int64 min-reduction over a tiny trailing axis is some 20× slower on CPU (int32's
    is fast)."""
    slots = keys.view(keys.shape[0], 2, agents, -1)
    if keys.dtype != torch.int64:
        return slots.amin(-1)
    best = slots[..., 0]
    for m in range(1, slots.shape[-1]):
        best = torch.minimum(best, slots[..., m])
    return best


def best_of_others(best: torch.Tensor, slots: int) -> torch.Tensor:
    """``[B, 2, A]``: for each worker the smallest key of ``best [B, 2, A]`` (each worker's own best) among
    the *other* workers (empty where there is none)."""
    layout = layout_of(best)
    agents = best.shape[-1]
    if agents <= SMALL_BOOK:
        return (best[:, :, None, :] | _others(agents, best.dtype, best.device)).amin(-1)
    # the best of all, and for its owner (keys are unique: the slot names the worker) the second best
    first = best.amin(-1, keepdim=True)  # [B, 2, 1]
    owner = (first & layout.slot_mask) // slots  # past the last worker when the book side is empty
    mine = torch.arange(agents, device=best.device) == owner  # [B, 2, A]
    second = (best | (mine.to(best.dtype) * layout.empty)).amin(-1, keepdim=True)
    return torch.where(mine, second, first)


@lru_cache(maxsize=16)
def _others(agents: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``[A, A]``: 0 off the diagonal, the empty key on it (OR-ed onto a row, it hides the worker's own)."""
    return torch.zeros(agents, agents, dtype=dtype, device=device).fill_diagonal_(layout_of_dtype(dtype).empty)


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
    layout = layout_of(book.bids)
    batch, _, width = book.bids.shape
    slots, device = width // agents, book.bids.device
    bids, asks = book.bids, book.asks
    coin = torch.zeros(batch, agents, dtype=torch.float64, device=device)
    goods = torch.zeros(batch, 2, agents, dtype=torch.long, device=device)
    trades = torch.zeros(batch, 2, dtype=torch.long, device=device)
    volume = torch.zeros(batch, 2, dtype=torch.long, device=device)
    for _ in range(rounds):
        other = best_of_others(per_worker_min(asks, agents), slots)  # [B, 2, A]
        # a bid crosses when its price reaches that ask's: (top − p_bid) − p_ask ≥ 0; the others get OUT
        gap = ((top_price - (other >> layout.price_shift))[..., None]
               - (bids.view(batch, 2, agents, slots) >> layout.price_shift))
        chosen = (bids.view(batch, 2, agents, slots) | ((gap >> layout.sign) & layout.out)).view(
            batch, 2, width).amin(-1)
        matched = chosen < layout.out  # [B, 2]
        if not bool(matched.any()):
            break
        bid_slot = ((chosen & layout.slot_mask) * matched).long()  # slot 0 where nothing trades (left as it is)
        buyer = bid_slot // slots
        sold = other.gather(-1, buyer[..., None])[..., 0]
        ask_slot = ((sold & layout.slot_mask) * matched).long()
        seller = ask_slot // slots
        bid_price, ask_price = top_price - (chosen >> layout.price_shift), sold >> layout.price_shift
        # the earlier order sets the price; fewer steps left = placed earlier (the ask on a tie)
        bid_first = ((chosen >> layout.slot_bits) & LEFT_MASK) < ((sold >> layout.slot_bits) & LEFT_MASK)
        deal = torch.where(bid_first, bid_price, ask_price).long() * matched
        filled = matched.to(layout.dtype)[..., None] * layout.empty
        bids, asks = (keys.scatter(2, at[..., None], keys.gather(2, at[..., None]) | filled)
                      for keys, at in ((bids, bid_slot), (asks, ask_slot)))
        coin = coin.scatter_add(1, seller, deal.double()).scatter_add(1, buyer, ((bid_price - deal) * matched).double())
        goods = goods.scatter_add(2, buyer[..., None], matched.long()[..., None])
        trades, volume = trades + matched, volume + deal
    return Book(bids, asks), Fills(coin, by_resource(goods)[1], (trades[:, 0] + trades[:, 1]).double(),
                                   (volume[:, 0] + volume[:, 1]).double())


def expire(book: Book, agents: int, top_price: int) -> tuple[Book, torch.Tensor, torch.Tensor]:
    """One step older: orders with no steps left expire, the rest lose one. Returns ``(book, coin [B, A],
    goods [B, A, 2])``, the escrow given back."""
    layout = layout_of(book.bids)

    def age(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        live = is_open(keys)
        ended = live & ((((keys >> layout.slot_bits) & LEFT_MASK) - 1) >> layout.sign)  # live, 0 steps left
        return (keys - ((live - ended) << layout.slot_bits)) | (-ended & layout.empty), ended

    bids, bid_ended = age(book.bids)
    asks, ask_ended = age(book.asks)
    coin, _ = by_resource(per_worker((top_price - (book.bids >> layout.price_shift)) * bid_ended, agents))
    return Book(bids, asks), coin.double(), by_resource(per_worker(ask_ended, agents))[1].long()


def quotes(book: Book, agents: int, top_price: int) -> torch.Tensor:
    """``[B, A, 4]`` per worker the best wood bid, wood ask, stone bid and stone ask of the other workers
    (price ÷ ``top_price``; −1 where there is none)."""
    layout = layout_of(book.bids)
    slots = book.bids.shape[-1] // agents
    out = []
    for keys, is_bid in ((book.bids, True), (book.asks, False)):
        best = best_of_others(per_worker_min(keys, agents), slots)  # [B, 2, A]
        p = (best >> layout.price_shift).double()
        out.append(torch.where(best < layout.out, (top_price - p if is_bid else p) / top_price, -1.0))
    return torch.stack([out[0][:, 0], out[1][:, 0], out[0][:, 1], out[1][:, 1]], -1)
