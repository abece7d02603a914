"""The SYNTHETIC order-book sample shipped with the replay setting, and the generator that writes it.

Nothing here is market data: it is a seeded simulation in the spirit of the queue-reactive models
(Huang, Lehalle & Rosenbaum 2015), good enough to exercise the replay and to give a learned policy
something Avellaneda–Stoikov cannot see. ``python -m decisionlab.domains.market_making.replay.generate_sample``
rewrites ``sample/`` bit-identically (same seed, same bytes; gzip without a time stamp).

**The book.** One instrument, tick 0.01, around 100. Each side keeps ``depth`` price slots of one tick
from its best price (a slot may be empty); sizes are whole units. Events arrive in continuous time
(one exponential clock over all event kinds, rates recomputed after each event):

- a limit order joins the best queue of a side (``limit_rate``, 1–6 units);
- a cancellation at the best queue, at a rate proportional to its size (``cancel_rate`` per unit);
- a market order (``market_rate``; 1 + geometric units with mean ``market_size``, one in twenty with
  mean ``large_size``, which sweeps levels): buys at a rate ∝ ``exp(+β·I + d)``, sells ∝ ``exp(−β·I − d)``,
  with I the best-level imbalance (bid − ask)/(bid + ask) and d the latent flow signal below, and all
  market orders rarer when the spread is wide (rate divided by the spread in ticks);
- when the spread is wider than a tick, limit orders improve a side by one tick (``inside_rate`` per
  side per empty tick in the spread, 1–6 units), the bid side more likely under buy pressure;
- deeper slots are refreshed (``deep_rate`` per side): a random slot gains 1–6 units, or loses up to 6,
  pulled toward a size that grows with the distance from the best.

When a best queue is emptied (by a market order or a cancellation) that side's best price moves to
the next non-empty slot: the mid moves by half a tick, and a full tick when the other side follows.
Since the thinner queue empties first, **the imbalance predicts the next mid move** (the
queue-reactive effect).

**Latent state, per second.** An activity level ``m = exp(x)`` multiplies every rate (stochastic
volatility: x is an AR(1) with a 10-minute half-life and standard deviation ``activity_sd``), and a
flow signal d (AR(1), 30-second half-life, std ``signal_sd``) tilts the market orders toward one
side, so the order flow trends for a few tens of seconds (short-term drift).

**Files** (under ``sample/``, written by :func:`write_sample`):

- ``synthetic_incremental_book_L2.csv.gz`` and ``synthetic_trades.csv.gz``: tardis-style CSVs of
  :data:`TARDIS_SAMPLE` (4 hours; exchange ``synthetic``, symbol ``SYN``; the book starts with a
  snapshot; a market order that sweeps levels is one trade row per price);
- ``SYN_2024-01-02_34200000_36000000_message_10.csv.gz`` and ``..._orderbook_10.csv.gz``: a short
  LOBSTER-style pair of :data:`LOBSTER_SAMPLE` (30 minutes from 9:30, 10 levels, one message per change
  of a price level; order ids are synthetic and do not follow individual orders).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
TARDIS_BOOK_FILE = "synthetic_incremental_book_L2.csv.gz"
TARDIS_TRADES_FILE = "synthetic_trades.csv.gz"
LOBSTER_MESSAGE_FILE = "SYN_2024-01-02_34200000_36000000_message_10.csv.gz"
LOBSTER_ORDERBOOK_FILE = "SYN_2024-01-02_34200000_36000000_orderbook_10.csv.gz"
# SHA-256 of each file's decompressed text, as shipped (the gzip bytes are identical too with the same
# zlib: the files were written with zlib 1.2.13; another zlib may compress the same text differently).
SAMPLE_SHA256 = {
    "synthetic_incremental_book_L2.csv.gz": "f24bede1c48088c6dd76b8f3e4e41902235e404a1a14de05356f515946272d33",
    "synthetic_trades.csv.gz": "bf09f8f8bff0aca93535ebc194f17f4b200d5414844697f65fdb17b1ab17fc49",
    "SYN_2024-01-02_34200000_36000000_message_10.csv.gz":
        "169cbe871ffac99d475d4755560df9d7290d68b5ca378ee1bb0b5c2fbd958dba",
    "SYN_2024-01-02_34200000_36000000_orderbook_10.csv.gz":
        "81d0a3f0b28dc8d9092fa8a4727a1006e9523c4976162ee8893cca878fae5dfa",
}
SAMPLE_ZLIB = "1.2.13"
TARDIS_BOOK_HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
TARDIS_TRADES_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"


@dataclass(frozen=True)
class SampleConfig:
    """Parameters of the synthetic book (rates are per second, multiplied by the activity m)."""

    seed: int = 20240102
    seconds: int = 4 * 3600
    depth: int = 20  # price slots kept per side
    first_ask_ticks: int = 10_000  # best ask at the start, in ticks of 0.01 (100.00)
    limit_rate: float = 0.8
    cancel_rate: float = 0.15
    market_rate: float = 0.45
    market_size: float = 3.0
    large_size: float = 25.0
    large_probability: float = 0.05
    imbalance_beta: float = 0.8
    inside_rate: float = 1.5
    deep_rate: float = 2.0
    base_size: float = 8.0  # target size of the slot next to the best (units)
    size_per_level: float = 1.5  # ... growing by this much per tick of distance
    activity_sd: float = 0.45
    activity_half_life: float = 600.0  # seconds
    signal_sd: float = 0.6
    signal_half_life: float = 30.0  # seconds


TARDIS_SAMPLE = SampleConfig()
LOBSTER_SAMPLE = SampleConfig(seed=20240103, seconds=30 * 60)
TARDIS_START_US = 1_704_205_800_000_000  # 2024-01-02 14:30:00 UTC
LOBSTER_START_SECONDS = 34_200  # 9:30 after midnight
LOBSTER_LEVELS = 10


@dataclass(frozen=True)
class Change:
    """One event of the simulation: the levels it changed and the trades it made.

    ``time``: seconds since the start; ``levels``: ``(is_bid, price_ticks, new_size)`` (0 = removed);
    ``trades``: ``(aggressor_is_buy, price_ticks, size)``; ``kind``: ``"limit"``, ``"cancel"`` or ``"market"``.
    """

    time: float
    kind: str
    levels: tuple[tuple[bool, int, int], ...]
    trades: tuple[tuple[bool, int, int], ...] = ()


class SyntheticBook:
    """The simulation of the module docstring; :meth:`events` yields every :class:`Change` in time order.

    Only ``random.Random.random`` is drawn (its sequence is guaranteed across Python versions), and
    the draws of the first t seconds do not depend on the length of the run: a shorter run is a prefix."""

    def __init__(self, config: SampleConfig) -> None:
        self.c = config
        self.rng = random.Random(config.seed)
        self.ask = config.first_ask_ticks
        self.bid = config.first_ask_ticks - 1
        self.bids = [self._target(j) for j in range(config.depth)]  # size at bid − j
        self.asks = [self._target(j) for j in range(config.depth)]  # size at ask + j
        self.log_activity = 0.0
        self.signal = 0.0

    # -- draws ------------------------------------------------------------------------------------
    def _u(self) -> float:
        return self.rng.random()

    def _normal(self) -> float:
        u1, u2 = 1.0 - self._u(), self._u()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)

    def _units(self, low: int, high: int) -> int:
        return low + min(int(self._u() * (high - low + 1)), high - low)

    def _geometric(self, mean: float) -> int:
        """1 + a geometric count with mean ``mean − 1`` (so the mean is ``mean``)."""
        p = 1.0 / mean
        return 1 + int(math.log(1.0 - self._u()) / math.log(1.0 - p)) if p < 1 else 1

    def _target(self, j: int) -> int:
        return int(self.c.base_size + self.c.size_per_level * j)

    # -- book moves -------------------------------------------------------------------------------
    def snapshot(self) -> tuple[tuple[bool, int, int], ...]:
        """Every non-empty level ``(is_bid, price_ticks, size)``, bids then asks, best first."""
        bids = tuple((True, self.bid - j, s) for j, s in enumerate(self.bids) if s > 0)
        asks = tuple((False, self.ask + j, s) for j, s in enumerate(self.asks) if s > 0)
        return bids + asks

    def top(self, levels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The ``levels`` best non-empty ``(price_ticks, size)`` per side: bids, asks."""
        bids = [(self.bid - j, s) for j, s in enumerate(self.bids) if s > 0][:levels]
        asks = [(self.ask + j, s) for j, s in enumerate(self.asks) if s > 0][:levels]
        return bids, asks

    def _fresh_deep(self) -> int:
        return self._units(1, 2 * self._target(self.c.depth - 1))

    def _retreat(self, is_bid: bool, out: list[tuple[bool, int, int]]) -> None:
        """The best queue of a side is empty: move its best price to the next non-empty slot, add a slot
        at the far end (its level is new)."""
        queue = self.bids if is_bid else self.asks
        while queue[0] == 0:
            queue.pop(0)
            size = self._fresh_deep()
            queue.append(size)
            if is_bid:
                self.bid -= 1
                out.append((True, self.bid - (self.c.depth - 1), size))
            else:
                self.ask += 1
                out.append((False, self.ask + self.c.depth - 1, size))

    def _improve(self, is_bid: bool, size: int, out: list[tuple[bool, int, int]]) -> None:
        """A limit order one tick inside the spread: a new best slot, the farthest slot leaves the window."""
        queue = self.bids if is_bid else self.asks
        dropped = queue.pop()
        queue.insert(0, size)
        if is_bid:
            if dropped:
                out.append((True, self.bid - (self.c.depth - 1), 0))
            self.bid += 1
            out.append((True, self.bid, size))
        else:
            if dropped:
                out.append((False, self.ask + self.c.depth - 1, 0))
            self.ask -= 1
            out.append((False, self.ask, size))

    def _market(self, buy: bool, size: int, out: list[tuple[bool, int, int]],
                trades: list[tuple[bool, int, int]]) -> None:
        queue = self.asks if buy else self.bids
        left = size
        while left > 0:
            price = self.ask if buy else self.bid
            take = min(left, queue[0])
            if take > 0:
                queue[0] -= take
                left -= take
                trades.append((buy, price, take))
                out.append((not buy, price, queue[0]))
            if queue[0] == 0:
                self._retreat(not buy, out)

    # -- the event loop ---------------------------------------------------------------------------
    def _rates(self) -> list[float]:
        c, m = self.c, math.exp(self.log_activity)
        qb, qa = self.bids[0], self.asks[0]
        imbalance = (qb - qa) / (qb + qa)
        spread = self.ask - self.bid
        tilt = c.imbalance_beta * imbalance + self.signal
        inside = c.inside_rate * (spread - 1) * m
        return [
            c.limit_rate * m, c.limit_rate * m,  # limit order at the best bid, best ask
            c.cancel_rate * qb * m, c.cancel_rate * qa * m,  # cancellations at the best
            c.market_rate * m * math.exp(tilt) / spread, c.market_rate * m * math.exp(-tilt) / spread,  # buy, sell
            inside * (1 + math.tanh(tilt)) / 2, inside * (1 - math.tanh(tilt)) / 2,  # improve bid, ask
            c.deep_rate * m, c.deep_rate * m,  # refresh a deep bid slot, ask slot
        ]

    def _apply(self, kind: int) -> tuple[str, list[tuple[bool, int, int]], list[tuple[bool, int, int]]]:
        out: list[tuple[bool, int, int]] = []
        trades: list[tuple[bool, int, int]] = []
        if kind in (0, 1):
            is_bid = kind == 0
            queue = self.bids if is_bid else self.asks
            queue[0] += self._units(1, 6)
            out.append((is_bid, self.bid if is_bid else self.ask, queue[0]))
            return "limit", out, trades
        if kind in (2, 3):
            is_bid = kind == 2
            queue = self.bids if is_bid else self.asks
            queue[0] -= min(queue[0], self._units(1, 3))
            out.append((is_bid, self.bid if is_bid else self.ask, queue[0]))
            if queue[0] == 0:
                self._retreat(is_bid, out)
            return "cancel", out, trades
        if kind in (4, 5):
            large = self._u() < self.c.large_probability
            size = self._geometric(self.c.large_size if large else self.c.market_size)
            self._market(kind == 4, size, out, trades)
            return "market", out, trades
        if kind in (6, 7):
            self._improve(kind == 6, self._units(1, 6), out)
            return "limit", out, trades
        is_bid = kind == 8
        queue = self.bids if is_bid else self.asks
        j = 1 + min(int(self._u() * (self.c.depth - 1)), self.c.depth - 2)
        target = self._target(j)
        if self._u() < target / (target + queue[j] + 1e-9):
            queue[j] += self._units(1, 6)
            label = "limit"
        else:
            queue[j] -= min(queue[j], self._units(1, 6))
            label = "cancel"
        out.append((is_bid, (self.bid - j) if is_bid else (self.ask + j), queue[j]))
        return label, out, trades

    def _latent_step(self) -> None:
        c = self.c
        phi_x = 0.5 ** (1.0 / c.activity_half_life)
        phi_d = 0.5 ** (1.0 / c.signal_half_life)
        self.log_activity = phi_x * self.log_activity + c.activity_sd * math.sqrt(1 - phi_x**2) * self._normal()
        self.signal = phi_d * self.signal + c.signal_sd * math.sqrt(1 - phi_d**2) * self._normal()

    def events(self) -> Iterator[Change]:
        """Every change of the book over ``config.seconds``, in time order."""
        t = 0.0
        for second in range(self.c.seconds):
            self._latent_step()
            end = float(second + 1)
            while True:
                rates = self._rates()
                total = sum(rates)
                t += -math.log(1.0 - self._u()) / total
                if t >= end:
                    t = end  # memoryless: restart the clock at the second with the new latent state
                    break
                pick, acc = self._u() * total, 0.0
                kind = len(rates) - 1
                for index, rate in enumerate(rates):
                    acc += rate
                    if pick < acc:
                        kind = index
                        break
                label, levels, trades = self._apply(kind)
                yield Change(t, label, tuple(levels), tuple(trades))


# ----- writers -------------------------------------------------------------------------------------


def _price(ticks: int) -> str:
    """Ticks of 0.01 as a decimal string (no float formatting)."""
    return f"{ticks // 100}.{ticks % 100:02d}"


def tardis_rows(config: SampleConfig = TARDIS_SAMPLE, start_us: int = TARDIS_START_US) -> Iterator[tuple[bool, str]]:
    """The lines of the tardis files of ``config`` as they are made, ``(is_book, line)`` (the book's header
    and snapshot first, then the trades' header): a run of any length streams in constant memory."""
    book = SyntheticBook(config)
    prefix = "synthetic,SYN"
    yield True, TARDIS_BOOK_HEADER
    for is_bid, price, size in book.snapshot():
        side = "bid" if is_bid else "ask"
        yield True, f"{prefix},{start_us},{start_us + 250},true,{side},{_price(price)},{size}"
    yield False, TARDIS_TRADES_HEADER
    trade_id = 0
    for change in book.events():
        stamp = start_us + round(change.time * 1_000_000)
        local = stamp + 250
        for buy, price, size in change.trades:
            trade_id += 1
            yield False, f"{prefix},{stamp},{local},{trade_id},{'buy' if buy else 'sell'},{_price(price)},{size}"
        for is_bid, price, size in change.levels:
            yield True, f"{prefix},{stamp},{local},false,{'bid' if is_bid else 'ask'},{_price(price)},{size}"


def tardis_lines(config: SampleConfig = TARDIS_SAMPLE, start_us: int = TARDIS_START_US) -> tuple[list[str], list[str]]:
    """The lines (headers included) of the tardis book and trades files of ``config``."""
    book_lines: list[str] = []
    trade_lines: list[str] = []
    for is_book, line in tardis_rows(config, start_us):
        (book_lines if is_book else trade_lines).append(line)
    return book_lines, trade_lines


def lobster_lines(config: SampleConfig = LOBSTER_SAMPLE, levels: int = LOBSTER_LEVELS) -> tuple[list[str], list[str]]:
    """The lines of the LOBSTER message and orderbook files of ``config`` (no headers).

    One message per changed price level: a size increase is a submission (type 1), a decrease a
    partial cancellation (2) or a deletion (3, the level emptied), a traded level an execution (4,
    ``direction`` = the resting side). The orderbook row after each message is the book once the
    whole event is applied (LOBSTER's own rows move level by level; the replay reads only the book
    at the step times and the executions)."""
    book = SyntheticBook(config)
    sizes: dict[tuple[bool, int], int] = {(is_bid, price): size for is_bid, price, size in book.snapshot()}
    messages: list[str] = []
    rows: list[str] = []
    order_id = 0

    def book_row() -> str:
        bids, asks = book.top(levels)
        cells = []
        for j in range(levels):
            ask = f"{asks[j][0] * 100},{asks[j][1]}" if j < len(asks) else "9999999999,0"
            bid = f"{bids[j][0] * 100},{bids[j][1]}" if j < len(bids) else "-9999999999,0"
            cells.append(f"{ask},{bid}")
        return ",".join(cells)

    for change in book.events():
        ns = round(change.time * 1e9)
        stamp = f"{LOBSTER_START_SECONDS + ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"
        traded = {(not buy, price): size for buy, price, size in change.trades}
        row = book_row()
        for is_bid, price, size in change.levels:
            old = sizes.get((is_bid, price), 0)
            direction = 1 if is_bid else -1
            order_id += 1
            if (is_bid, price) in traded:
                kind, amount = 4, traded.pop((is_bid, price))
                if size > old - amount:  # a level refilled in the same event (never at the best)
                    kind, amount = 1, size - old
            elif size >= old:
                kind, amount = 1, size - old
            else:
                kind, amount = (3 if size == 0 else 2), old - size
            if amount == 0:
                continue
            sizes[(is_bid, price)] = size
            messages.append(f"{stamp},{kind},{order_id},{amount},{price * 100},{direction}")
            rows.append(row)
    return messages, rows


def sha256_lines(lines: list[str]) -> str:
    """SHA-256 of the decompressed text of ``lines`` (what the README records)."""
    return hashlib.sha256(("\n".join(lines) + "\n").encode()).hexdigest()


def sample_lines(tardis: SampleConfig = TARDIS_SAMPLE, lobster: SampleConfig = LOBSTER_SAMPLE) -> dict[str, list[str]]:
    """``{file name: lines}`` of the four sample files (what :func:`write_sample` writes)."""
    book_lines, trade_lines = tardis_lines(tardis)
    message_lines, orderbook_lines = lobster_lines(lobster)
    return {TARDIS_BOOK_FILE: book_lines, TARDIS_TRADES_FILE: trade_lines, LOBSTER_MESSAGE_FILE: message_lines,
            LOBSTER_ORDERBOOK_FILE: orderbook_lines}


def gzip_lines(lines: list[str]) -> bytes:
    """Gzip of the lines with no file name and time stamp 0: the same lines give the same bytes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as handle:
        handle.write(("\n".join(lines) + "\n").encode())
    return buffer.getvalue()


def write_sample(folder: Path = SAMPLE_DIR, tardis: SampleConfig = TARDIS_SAMPLE,
                 lobster: SampleConfig = LOBSTER_SAMPLE) -> dict[str, Path]:
    """Write the four sample files to ``folder``; returns ``{file name: path}``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, lines in sample_lines(tardis, lobster).items():
        path = folder / name
        path.write_bytes(gzip_lines(lines))
        written[name] = path
    return written


def short(config: SampleConfig, seconds: int) -> SampleConfig:
    """``config`` cut to its first ``seconds`` (a prefix of the full run, event for event)."""
    return replace(config, seconds=seconds)


if __name__ == "__main__":
    for path in write_sample().values():
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")
