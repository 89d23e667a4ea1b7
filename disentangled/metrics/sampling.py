"""Drawing ground-truth samples and encoding them: the sampling side of every metric.

The metrics draw from a data set in the reference's order: every batch first draws its
factors (``data.sample_factors``), then its observations (``data.observations_from_factors``,
which draws the nuisance factors and any per-image noise). Given a
``numpy.random.RandomState`` seeded as the reference seeds it, the same factors come out.

Encoding is where the time goes (the BetaVAE score alone looks at 1.92 million images).
:class:`Encoder` makes it cheap without changing any value:

* When the data set declares that an observation is a pure function of the latent factors
  (``data.observations_deterministic``: no noise, no nuisance factor with more than one
  value) and the representation is deterministic (the ``mean`` representation), each
  distinct factor combination is rendered and encoded once, in large batches, and later
  requests are served from a table indexed by the combination's flat index
  (``data.latent_space.index``). Rendering such a data set draws nothing from the rng (a
  nuisance factor with one value draws nothing), so skipping it leaves the stream of
  factors unchanged: the metrics see the same samples with or without the cache.
* Otherwise observations are rendered batch by batch in the reference's order and encoded
  in large batches.

An :class:`EncodingCache` can be shared by all the metrics of one representation, so a
whole evaluation encodes each combination at most once. A :class:`TwoStageRepresentation`
(a trained model's ``mean`` and ``sampled`` representations) is a deterministic encoding
followed by a per-row finish; the cache stores the encoding, so the sampled representation
is served from it as well (each request still gets its own noise), and the two
representations of one model share one cache.
"""

from __future__ import annotations

import abc
from typing import Callable

import numba
import numpy as np

from ..data.base import Rng, check_rng
from ..errors import ParameterError

Representation = Callable[[np.ndarray], np.ndarray]

DENSE_TABLE_LIMIT = 64_000_000  # entries (combinations x code size) of a dense code table
DRAW_CHUNK = 2_000_000  # draws reduced per bulk step of draw_factor_batches
WORD_SLACK = 1.02  # raw words drawn per bulk step, as a multiple of the expected need


class TwoStageRepresentation(abc.ABC):
    """A representation in two stages: ``encoding`` (deterministic: an image always gets the
    same row of features), then ``finish`` (features -> codes, row by row, in request order;
    it may draw noise, one draw per row it is given).

    Two representations with the same ``encoding`` object can share one encoding cache.
    """

    encoding: Callable[[np.ndarray], np.ndarray]

    @abc.abstractmethod
    def finish(self, features: np.ndarray) -> np.ndarray:
        """Codes ``[N, D]`` of features ``[N, F]`` (``encoding``'s output)."""

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        return self.finish(to_numpy_codes(self.encoding(observations)))


def encoding_of(representation) -> Callable[[np.ndarray], np.ndarray]:
    """What an encoding cache stores for ``representation``: its deterministic stage."""
    return representation.encoding if isinstance(representation, TwoStageRepresentation) else representation


def is_deterministic_representation(representation) -> bool:
    """Whether ``representation`` gives the same code for the same image every time.

    Read from its ``deterministic`` attribute if it has one, else true only for a
    representation whose ``kind`` is ``"mean"``.
    """
    flag = getattr(representation, "deterministic", None)
    if flag is not None:
        return bool(flag)
    return getattr(representation, "kind", None) == "mean"


def to_numpy_codes(codes) -> np.ndarray:
    if hasattr(codes, "detach"):
        codes = codes.detach().cpu().numpy()
    elif isinstance(codes, (tuple, list)) and codes and hasattr(codes[0], "shape"):
        codes = codes[0]
        if hasattr(codes, "detach"):
            codes = codes.detach().cpu().numpy()
    arr = np.asarray(codes)
    if arr.ndim == 1:
        arr = arr[:, None]
    return arr


class EncodingCache:
    """Codes of distinct factor combinations of one data set under one representation.

    For a :class:`TwoStageRepresentation` the table holds its ``encoding`` (the features
    before ``finish``), and serves every representation with that encoding.
    """

    def __init__(self, data, representation: Representation, *, batch_size: int = 256):
        self.data = data
        self.encoding = encoding_of(representation)
        self.batch_size = int(batch_size)
        self.space = data.latent_space
        self.table: np.ndarray | None = None
        self.filled: np.ndarray | None = None
        self.num_encoded = 0  # distinct combinations rendered and encoded so far

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Codes ``[len(keys), D]`` for flat indices ``keys``, encoding the missing ones."""
        keys = np.asarray(keys, dtype=np.int64)
        if keys.size == 0:
            return np.zeros((0, 0 if self.table is None else self.table.shape[1]), dtype=np.float32)
        # the distinct missing keys, sorted (the order they are encoded in), from a mark per
        # combination: np.unique sorts or hashes all the keys, a million and more for BetaVAE
        wanted = np.zeros(self.space.num_combinations, dtype=bool)
        wanted[keys] = True
        if self.filled is not None:
            wanted &= ~self.filled
        missing = np.flatnonzero(wanted)
        if missing.size:
            self._encode(missing)
        return self.table[keys]

    def _encode(self, keys: np.ndarray) -> None:
        throwaway = np.random.RandomState(0)  # the renderer draws nothing for these data sets
        for lo in range(0, keys.size, self.batch_size):
            chunk = keys[lo : lo + self.batch_size]
            obs = self.data.observations_from_factors(self.space.factors(chunk), rng=throwaway)
            codes = to_numpy_codes(self.encoding(obs))
            if codes.shape[0] != chunk.size:
                raise ValueError(
                    f"the representation returned {codes.shape[0]} codes for {chunk.size} observations"
                )
            if self.table is None:
                total = self.space.num_combinations
                if total * codes.shape[1] > DENSE_TABLE_LIMIT:
                    raise MemoryError("code table too large")
                dtype = codes.dtype if np.issubdtype(codes.dtype, np.floating) else np.float64
                self.table = np.zeros((total, codes.shape[1]), dtype=dtype)
                self.filled = np.zeros(total, dtype=bool)
            self.table[chunk] = codes
            self.filled[chunk] = True
        self.num_encoded += int(keys.size)


def resolve_cache(data, representation, cache: "EncodingCache | bool | None" = None) -> "EncodingCache | bool":
    """The cache a metric should use: the given one, a new one, or False (no caching).

    ``None`` means: cache when the data set declares ``observations_deterministic`` and the
    representation is deterministic or a :class:`TwoStageRepresentation`.
    """
    if isinstance(cache, EncodingCache):
        return cache
    if cache is None:
        cache = data.observations_deterministic and (
            isinstance(representation, TwoStageRepresentation) or is_deterministic_representation(representation))
    if not cache:
        return False
    if data.latent_space.num_combinations > DENSE_TABLE_LIMIT:
        return False
    return EncodingCache(data, representation)


class Encoder:
    """Collects the observations a metric asks for, in order, and returns their codes.

    ``add(factors, rng)`` consumes ``rng`` exactly as ``data.observations_from_factors``
    would; ``codes()`` returns the codes of everything added so far, in order.
    """

    def __init__(
        self,
        data,
        representation: Representation,
        *,
        cache: EncodingCache | bool | None = None,
        batch_size: int = 256,
    ):
        self.data = data
        self.representation = representation
        self.batch_size = int(batch_size)
        cache = resolve_cache(data, representation, cache)
        if isinstance(cache, EncodingCache):
            if cache.data is not data or cache.encoding is not encoding_of(representation):
                raise ValueError("an EncodingCache serves one data set and one representation")
        self.cache = cache if isinstance(cache, EncodingCache) else None
        two_stage = isinstance(representation, TwoStageRepresentation)
        self._finish = representation.finish if two_stage else None  # applied to what the cache serves
        self._keys: list[np.ndarray] = []  # factor batches not yet served from the cache
        self._pending: list[np.ndarray] = []
        self._pending_count = 0
        self._done: list[np.ndarray] = []
        self.num_requested = 0

    def add(self, factors: np.ndarray, rng: Rng) -> None:
        self.num_requested += int(len(factors))
        if self.cache is not None:
            # rendering would draw nothing from rng (observations_deterministic), so skipping
            # it here leaves the stream of factors exactly as it would have been
            self._keys.append(factors)
            return
        obs = self.data.observations_from_factors(factors, rng=rng)
        self._pending.append(obs)
        self._pending_count += obs.shape[0]
        if self._pending_count >= self.batch_size:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        obs = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending, self._pending_count = [], 0
        for lo in range(0, obs.shape[0], self.batch_size):
            chunk = obs[lo : lo + self.batch_size]
            codes = to_numpy_codes(self.representation(chunk))
            if codes.shape[0] != chunk.shape[0]:
                raise ValueError(f"the representation returned {codes.shape[0]} codes for {chunk.shape[0]} observations")
            self._done.append(codes)

    def codes(self) -> np.ndarray:
        """Codes ``[num_requested, D]`` of every observation added, in order."""
        if self.cache is not None and self._keys:
            # served once per request and kept, so a random finish draws once per row however
            # often codes() is called
            factors = np.concatenate(self._keys) if len(self._keys) > 1 else self._keys[0]
            self._keys = []
            served = self.cache.lookup(self.data.latent_space.index(factors))
            self._done.append(served if self._finish is None else to_numpy_codes(self._finish(served)))
        self._flush()
        if not self._done:
            return np.zeros((0, 0), dtype=np.float32)
        if len(self._done) > 1:
            self._done = [np.concatenate(self._done)]
        return self._done[0]


def sample_codes(
    data,
    representation: Representation,
    num_points: int,
    *,
    rng: Rng,
    batch_size: int = 16,
    cache: EncodingCache | bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``num_points`` i.i.d. ``(codes [N, D], factors [N, K])``, drawn in batches of ``batch_size``.

    The draws follow the reference's ``generate_batch_factor_code``: per batch, the factors,
    then the observations. ``batch_size`` only shapes the random stream; encoding happens in
    large batches.
    """
    check_rng(rng)
    if isinstance(num_points, bool) or not isinstance(num_points, (int, np.integer)) or num_points < 1:
        raise ParameterError(f"number of points must be a positive integer, got {num_points!r}")
    enc = Encoder(data, representation, cache=cache)
    factors = []
    done = 0
    while done < num_points:
        size = min(num_points - done, batch_size)
        f = data.sample_factors(size, rng=rng)
        enc.add(f, rng)
        factors.append(f)
        done += size
    return enc.codes(), np.concatenate(factors)


# ---------------------------------------------------------------------------------------
# many small draws at once


def draw_factor_batches(data, rng: Rng, num_points: int, batch_size: int, batches: int):
    """The BetaVAE and FactorVAE scores' draws, all at once: ``(index [P], factors [P, batches, batch_size, K])``.

    Per point, the loop it replaces draws ``randint(rng, data.num_factors, None)`` (the fixed
    factor) and then calls ``data.sample_factors(batch_size, rng=rng)`` ``batches`` times;
    tens of thousands of small ``RandomState.randint`` calls cost more than the metric's
    arithmetic. For a ``RandomState`` (the study's rng) and the base class's uniform
    ``sample_factors``, the same numbers come from one bulk draw of the generator's raw 32-bit
    words, reduced as ``RandomState.randint`` reduces them (:func:`_bounded_draws`); the rng
    is left exactly where the loop would leave it. Returns None when that does not apply
    (another rng, a data set with its own ``sample_factors``): the caller then loops.

    Only for draws with nothing in between: the caller must not render (rendering may draw
    from ``rng``), so this serves the encoding cache's path.
    """
    from ..data.base import GroundTruthData

    if type(rng) is not np.random.RandomState or type(data).sample_factors is not GroundTruthData.sample_factors:
        return None
    sizes = np.asarray(data.factor_sizes, dtype=np.int64)
    k = sizes.size
    if k == 0 or sizes.max() > 2**31 or num_points < 1 or batch_size < 1 or batches < 1:
        return None
    # the bounds of one point's draws, in order: the fixed factor, then per batch one column
    # of batch_size draws per factor
    per_point = np.concatenate([[k], np.tile(np.repeat(sizes, batch_size), batches)])
    # expected raw words per draw: RandomState rejects masked words above the bound
    masks = np.array([(1 << int(h - 1).bit_length()) for h in per_point], dtype=np.float64)
    words_per_point = float(np.sum(np.where(per_point > 1, masks / per_point, 0.0)))
    index = np.empty(num_points, dtype=np.int64)
    factors = np.empty((num_points, batches, k, batch_size), dtype=np.int64)
    chunk = max(1, min(num_points, DRAW_CHUNK // per_point.size))
    start_state = rng.get_state()
    raw = np.zeros(0, dtype=np.uint32)
    used = 0
    for lo in range(0, num_points, chunk):
        hi = min(num_points, lo + chunk)
        bounds = np.tile(per_point, hi - lo)
        out = np.empty(bounds.size, dtype=np.int64)
        done = 0
        while True:
            need = int(words_per_point * (hi - lo) * WORD_SLACK) + 1024
            if raw.size - used < need:
                raw = np.concatenate([raw[used:], rng.randint(0, 2**32, size=need, dtype=np.uint32)])
                start_state, used = _advance(start_state, used), 0
            done, used = _bounded_draws(raw, used, bounds, done, out)
            if done == bounds.size:
                break
        out = out.reshape(hi - lo, per_point.size)
        index[lo:hi] = out[:, 0]
        factors[lo:hi] = out[:, 1:].reshape(hi - lo, batches, k, batch_size)
    # leave the generator after the last word used, not after the last word drawn
    rng.set_state(start_state)
    if used:
        rng.randint(0, 2**32, size=used, dtype=np.uint32)
    return index, factors.transpose(0, 1, 3, 2).copy()


def _advance(state, words: int):
    """The ``RandomState`` state ``words`` raw 32-bit draws after ``state``."""
    rs = np.random.RandomState()
    rs.set_state(state)
    if words:
        rs.randint(0, 2**32, size=words, dtype=np.uint32)
    return rs.get_state()


@numba.njit(cache=True, nogil=True)
def _bounded_draws(raw, used, bounds, done, out):
    """``RandomState.randint(h)`` for each bound ``h`` in ``bounds[done:]``, from the raw words
    ``raw[used:]``: the word masked to the bit length of ``h - 1``, rejected while above it
    (no word for ``h == 1``). Returns ``(draws done, words used)``; stops early when the
    words run out."""
    for i in range(done, bounds.shape[0]):
        r = bounds[i] - 1
        if r == 0:
            out[i] = 0
            continue
        mask = r
        mask |= mask >> 1
        mask |= mask >> 2
        mask |= mask >> 4
        mask |= mask >> 8
        mask |= mask >> 16
        while True:
            if used >= raw.shape[0]:
                return i, used
            v = np.int64(raw[used]) & mask
            used += 1
            if v <= r:
                out[i] = v
                break
    return bounds.shape[0], used
