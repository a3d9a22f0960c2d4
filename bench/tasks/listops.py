"""ListOps (Nangia & Bowman, "ListOps: A Diagnostic Dataset for Latent Tree Learning",
arXiv 1804.06028), as generated for Long Range Arena (Tay et al., arXiv 2011.04006): the value of a
nested expression such as `[MAX 2 9 [MIN 4 7 ] 0 ]` = 9, a 10-way classification of the sequence.

Operators: MIN, MAX, MED = int(numpy.median(args)) (the mean of the two middle values, truncated,
for an even count), SM = sum(args) mod 10; arguments are digits 0–9 or nested lists.

Follows LRA's `lra_benchmarks/data/listops.py`: below `max_depth` a node is an operator with
probability 0.25, else a digit; an operator takes 2..max_args arguments; an expression is kept only
if its token count (operators, digits and `]`; no parentheses) lies in a range. LRA keeps
500 < length < 2000 with max_depth = max_args = 10; here the range is min_length ≤ length ≤ seq_len
(min_length defaults to seq_len // 4, LRA's ratio) and sequences are padded with `<pad>` (id 0) to
seq_len. The root is always an operator: a lone digit is never long enough, so this changes no kept
expression's probability, and drawing stops as soon as an expression outgrows seq_len.

Defaults: max_args = 10 (LRA's); max_depth = 6 up to 512 tokens, 8 up to 1024, 10 (LRA's) above,
the fastest of 6, 8 and 10 at each length. A batch of 64 took (2-core AMD EPYC, median of 5-20):
~20 ms at 64-256 tokens, 32 ms at 512, 67 ms at 1024, ~140 ms at 2000 (LRA's setting). Deeper trees
are slower at short lengths because most outgrow seq_len (121 ms at 128 tokens with max_depth 10);
shallower ones at long lengths because few reach min_length (113 ms at 1024 with max_depth 6).

`baseline` is the majority-class share of 4096 expressions drawn from reserved seeds (below 2**32,
so never a split's; see `bench.tasks.split_seed`), computed on first access and cached per
configuration: 0.161 at the default 128 tokens (1.3 s), 0.169 at LRA's setting (9 s).
Generation uses Python's `random.Random` seeded from the batch seed (a local generator, no global
state): a tree is many scalar draws, and here a scalar `Generator.integers(10)` took 3.7 µs against
0.7 µs for `Random.randrange(10)`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch

from bench import tasks

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
PAD = "<pad>"
VOCAB = [PAD] + [str(digit) for digit in range(10)] + list(OPERATORS) + [END]
DIGIT_ID = 1  # id of "0"; digit d is DIGIT_ID + d
OPERATOR_ID = VOCAB.index(OPERATORS[0])
END_ID = VOCAB.index(END)
VALUE_P = 0.25  # LRA: below max_depth, a node is an operator with this probability
REFERENCE_SEED = 0x115705  # below 2**32: never a split seed
REFERENCE_SIZE = 4096
REFERENCE_CHUNK = 512  # drawn in chunks (seeds REFERENCE_SEED + i) to keep memory small at long lengths
MAX_TRIES_PER_EXAMPLE = 100  # beyond this many drawn trees per kept one, the options are refused

_baselines: dict[tuple, float] = {}


def reduce(operator: str, args: Sequence[int]) -> int:
    """The value of one operator applied to its argument values, as LRA's `to_value` computes it."""
    if operator == "[MIN":
        return min(args)
    if operator == "[MAX":
        return max(args)
    if operator == "[MED":
        ordered = sorted(args)
        middle = len(ordered) // 2
        # int(np.median): the mean of the two middle values, truncated (all values are >= 0)
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) // 2
    if operator == "[SM":
        return sum(args) % 10
    raise ValueError(f"unknown ListOps operator {operator!r} (allowed: {', '.join(OPERATORS)})")


def evaluate(tokens: Sequence[str]) -> int:
    """The value of an expression given as tokens, e.g. "[MAX 2 9 [MIN 4 7 ] 0 ]".split(); pads are skipped."""
    stack: list[tuple[str, list[int]]] = []
    result = None
    for token in tokens:
        if token == PAD:
            continue
        if result is not None:
            raise ValueError(f"token {token!r} after the end of the expression")
        if token in OPERATORS:
            stack.append((token, []))
            continue
        if token == END:
            if not stack:
                raise ValueError("']' closes no list")
            operator, args = stack.pop()
            if not args:
                raise ValueError(f"{operator} has no arguments")
            value = reduce(operator, args)
        elif len(token) == 1 and token.isdigit():
            value = int(token)
        else:
            raise ValueError(f"unknown ListOps token {token!r} (allowed: {' '.join(VOCAB)})")
        if stack:
            stack[-1][1].append(value)
        else:
            result = value
    if stack or result is None:
        raise ValueError(f"incomplete expression: {len(stack)} list(s) left open")
    return result


def max_length(max_depth: int, max_args: int) -> int:
    """Tokens in the largest expression: every node above the last level an operator with max_args arguments."""
    operators = sum(max_args ** level for level in range(max_depth - 1))
    return max_args ** (max_depth - 1) + 2 * operators


class _TooLong(Exception):
    pass


def draw_expression(rng: random.Random, max_depth: int, max_args: int, length_limit: int) -> tuple[list[int], int]:
    """One LRA expression (root an operator) as token ids, and its value; _TooLong past length_limit tokens."""
    ids: list[int] = []
    owed = 0  # closing brackets of the open lists, already counted against the limit

    def node(depth: int) -> int:
        nonlocal owed
        if depth > 1 and (depth >= max_depth or rng.random() > VALUE_P):
            digit = rng.randrange(10)
            ids.append(DIGIT_ID + digit)
            if len(ids) + owed > length_limit:
                raise _TooLong
            return digit
        operator = rng.randrange(len(OPERATORS))
        ids.append(OPERATOR_ID + operator)
        owed += 1
        if len(ids) + owed > length_limit:
            raise _TooLong
        args = [node(depth + 1) for _ in range(rng.randint(2, max_args))]
        ids.append(END_ID)
        owed -= 1
        return reduce(OPERATORS[operator], args)

    value = node(1)
    return ids, value


@tasks.register("listops")
class ListOps(tasks.Task):
    """Sequence: the value (0–9) of a nested MIN/MAX/MED/SM expression, padded to seq_len."""

    per_position = False
    default_seq_len = 128
    defaults = {"max_depth": None, "max_args": 10, "min_length": None}

    @classmethod
    def derive(cls, seq_len, options):
        if options["max_depth"] is None:
            options["max_depth"] = 6 if seq_len <= 512 else 8 if seq_len <= 1024 else 10
        if options["min_length"] is None:
            options["min_length"] = max(4, seq_len // 4)
        return options

    @classmethod
    def check(cls, seq_len, options):
        if seq_len < 4:
            return f"seq_len={seq_len} is too short (allowed: >= 4, the shortest expression '[MIN 1 2 ]')"
        max_depth, max_args, min_length = options["max_depth"], options["max_args"], options["min_length"]
        reason = (tasks.check_int("max_depth", max_depth, 2, 64) or tasks.check_int("max_args", max_args, 2)
                  or tasks.check_int("min_length", min_length, 4, seq_len))
        if reason:
            return reason
        longest = max_length(max_depth, max_args)
        if longest < min_length:
            return (f"max_depth={max_depth} and max_args={max_args} allow at most {longest} tokens, "
                    f"fewer than min_length={min_length} (allowed: raise max_depth or max_args, or lower min_length)")
        return ""

    def __init__(self, seq_len=None, **options):
        super().__init__(seq_len, **options)
        self.vocab = list(VOCAB)
        self.num_classes = 10

    @property
    def baseline(self) -> float:
        """Majority-class share of a fixed 4096-expression sample (cached per configuration)."""
        key = (self.seq_len, *sorted(self.options.items()))
        if key not in _baselines:
            counts = sum(torch.bincount(self.batch(REFERENCE_CHUNK, REFERENCE_SEED + chunk)[1], minlength=10)
                         for chunk in range(REFERENCE_SIZE // REFERENCE_CHUNK))
            _baselines[key] = counts.max().item() / REFERENCE_SIZE
        return _baselines[key]

    def generate(self, size, seed):
        max_depth, max_args, min_length = (self.options[key] for key in ("max_depth", "max_args", "min_length"))
        rng = random.Random(seed)
        inputs = np.zeros((size, self.seq_len), dtype=np.int64)  # 0 is <pad>
        targets = np.zeros(size, dtype=np.int64)
        kept = tries = 0
        while kept < size:
            if tries >= MAX_TRIES_PER_EXAMPLE * size + 1000:
                raise tasks.TaskOptionError(
                    f"listops: only {kept} of {tries} drawn expressions had {min_length}..{self.seq_len} tokens "
                    f"with max_depth={max_depth}, max_args={max_args} (allowed: options that keep at least "
                    f"1 in {MAX_TRIES_PER_EXAMPLE}; change max_depth or max_args, or lower min_length)")
            tries += 1
            try:
                ids, value = draw_expression(rng, max_depth, max_args, self.seq_len)
            except _TooLong:
                continue
            if len(ids) >= min_length:
                inputs[kept, :len(ids)] = ids
                targets[kept] = value
                kept += 1
        return torch.from_numpy(inputs), torch.from_numpy(targets), None
