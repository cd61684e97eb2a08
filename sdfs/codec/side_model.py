"""Coder 7's side information: each field coded in the range coder's stream by a model that learns.

Coder 6 wrote a group's scale rule in Exp-Golomb codes, its peak in 1 or 5 bits and its flags in a
bit each, whatever the photo. Those codes fit the fields' shapes but not their skew: at 3 levels
alpha is 0 in 88 % of sd3's groups and beta 0 or 1 in 75 %, a quarter of the peaks sent are the
largest, and weights follow in only 6 % of groups. Coder 7 codes each field against a
categorical distribution that starts from the shape coder 6's code implies (``P(v) ~ 2^-length(v)``,
worth a few observations) and counts every value it codes, so it learns each photo's skew as it
goes. Only the prediction weights, few and wide, stay Exp-Golomb codes in the bit stream.

Counts are integers and probabilities their exact float64 quotients, so the encoder and the
decoder build the same distributions on every machine.
"""

from __future__ import annotations

import numpy as np

INCREMENT = 32  # what coding a value adds to its count
FIELD_PRIOR = 8  # the prior of a field (rule, peak) is worth this many coded values
FLAG_PRIOR = 2  # a flag starts at even odds, worth this many


class AdaptiveModel:
    """A categorical distribution over ``len(lengths)`` values that learns from the values it codes."""

    def __init__(self, lengths: np.ndarray, prior: int) -> None:
        weights = [1 << int(lengths.max() - length) for length in lengths]
        total = sum(weights)
        self.counts = np.array([max(1, w * prior * INCREMENT // total) for w in weights], np.int64)
        self._bits: np.ndarray | None = None

    def probabilities(self) -> np.ndarray:
        return self.counts / self.counts.sum()

    def bits(self) -> np.ndarray:
        """What each value costs now, in bits (the encoder's prices; asked for a dozen times a group)."""
        if self._bits is None:
            self._bits = -np.log2(self.probabilities())
        return self._bits

    def _count(self, value: int) -> None:
        self.counts[value] += INCREMENT
        self._bits = None

    def encode(self, coder, family, value: int) -> None:
        coder.encode(np.array([value], np.int32), family, self.probabilities()[None])
        self._count(value)

    def decode(self, decoder, family, error: type[Exception]) -> int:
        try:
            value = int(decoder.decode(family, self.probabilities()[None])[0])
        except Exception as exc:  # constriction raises plain errors on exhausted input
            raise error(f"range-coded side information corrupt: {exc}") from None
        self._count(value)
        return value


class SideModel:
    """The models of one blob's side information: four flags and a group's scale rule and peak."""

    FLAGS = ("flat", "split", "peaked", "weights")

    def __init__(self, alpha_lengths: np.ndarray, beta_lengths: np.ndarray, peak_lengths: np.ndarray) -> None:
        self.flags = {name: AdaptiveModel(np.ones(2, np.int64), FLAG_PRIOR) for name in self.FLAGS}
        self.alpha = AdaptiveModel(alpha_lengths, FIELD_PRIOR)
        self.beta = AdaptiveModel(beta_lengths, FIELD_PRIOR)
        self.peak = AdaptiveModel(peak_lengths, FIELD_PRIOR)

    def rule_bits(self) -> np.ndarray:
        """[beta, alpha]: what each scale rule costs now."""
        return self.beta.bits()[:, None] + self.alpha.bits()[None, :]

    def group_bits(self, has_weights: bool, alpha: int, beta: int, peak: int) -> float:
        return float(self.flags["weights"].bits()[int(has_weights)] + self.alpha.bits()[alpha]
                     + self.beta.bits()[beta] + self.peak.bits()[peak])
