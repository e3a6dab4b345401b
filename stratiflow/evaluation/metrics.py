"""Prequential classification metrics for one model key.

Three metric sets share one interface -- ``update(y_true, y_pred, proba)`` and
``summary()`` -- and differ in which predictions they weigh:
:class:`CumulativeMetrics` all of them, :class:`RollingMetrics` the last
``window`` and :class:`FadingMetrics` all with weights fading by ``alpha`` per
step. Every value equals scikit-learn's on the same predictions (with the
fading weights as ``sample_weight``); the tests check this.

Log loss uses the model's probability for the true class as given (clipped to
``[1e-15, 1 - 1e-15]``, not renormalised over the classes), so a class the
model has never heard of costs ``-log(1e-15)``.

ROC AUC (binary problems, given the ``positive`` class) is computed from two
histograms of the positive-class probability over ``auc_bins`` equal bins on
[0, 1], as P(score_pos > score_neg) + 0.5 P(same bin). That equals
scikit-learn's ``roc_auc_score`` whenever every (positive, negative) pair that
shares a bin has equal scores (e.g. scores on bin centres); otherwise the
error is at most half the (weighted) share of pairs that share a bin.

>>> m = CumulativeMetrics(positive=True)
>>> for y, p, score in [(True, True, 0.8), (False, True, 0.6), (True, False, 0.3)]:
...     m.update(y, p, {True: score, False: 1 - score})
>>> s = m.summary()
>>> s["n"], round(s["accuracy"], 4), s["roc_auc"], s["per_class"]["true"]["support"]
(3, 0.3333, 0.5, 2)
>>> f = FadingMetrics(alpha=0.5)
>>> for y in ["a", "a", "b"]:
...     f.update(y, "a", {"a": 0.9, "b": 0.1})
>>> f.summary()["n"], round(f.summary()["accuracy"], 4)  # (0.25 + 0.5) / 1.75
(1.75, 0.4286)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from operator import itemgetter
from typing import Any

from stratiflow.records import Label, class_key

# --------------------------------------------------------------------------
# Metric sets: cumulative, rolling window and fading factor.
# --------------------------------------------------------------------------

#: Clipping bound for log loss, as in scikit-learn.
LOG_LOSS_EPS = 1e-15


_LOG_LOSS_MAX = 1.0 - LOG_LOSS_EPS


def log_loss_term(y_true: Label, proba: Mapping[Label, float]) -> float:
    """One prediction's log loss: minus the log of the true class's probability.

    The probability is clipped to ``[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]`` as given, not
    renormalised over the classes; a class missing from ``proba`` has probability 0.

    Parameters
    ----------
    y_true
        The true label.
    proba
        The model's probability per class.

    Returns
    -------
    float
        ``-log(p)`` of the clipped probability ``p`` of ``y_true`` (NaN if it is NaN).

    Examples
    --------
    >>> round(log_loss_term(True, {True: 0.8, False: 0.2}), 4)
    0.2231
    >>> round(log_loss_term("c", {"a": 0.9, "b": 0.1}), 4)  # -log(1e-15)
    34.5388
    """
    # min(max(p, eps), 1 - eps) spelled as comparisons (a NaN passes through, as there).
    p = proba.get(y_true, 0.0)
    if p < LOG_LOSS_EPS:
        p = LOG_LOSS_EPS
    elif p > _LOG_LOSS_MAX:
        p = _LOG_LOSS_MAX
    return -math.log(p)


def score_bin(score: float, auc_bins: int) -> int:
    """The histogram bin of a positive-class probability (NaN and <= 0: bin 0).

    Parameters
    ----------
    score
        The positive class's probability; above 1 counts as 1.
    auc_bins
        How many equal bins divide [0, 1].

    Returns
    -------
    int
        ``int(score * auc_bins)``, from 0 to ``auc_bins - 1`` (a score of 1 is in
        the top bin).

    Examples
    --------
    >>> score_bin(0.25, 10), score_bin(1.0, 10), score_bin(float("nan"), 10)
    (2, 9, 0)
    """
    # `not > 0` also sends NaN to the lowest bin; the cap keeps int() finite.
    if not score > 0.0:
        return 0
    if score > 1.0:
        score = 1.0
    b = int(score * auc_bins)
    return b if b < auc_bins else auc_bins - 1


def _auc(negatives: Mapping[int, float], positives: Mapping[int, float]) -> float | None:
    """P(score_pos > score_neg) + 0.5 P(same bin), from two score histograms."""
    n_neg = sum(negatives.values())
    n_pos = sum(positives.values())
    if not n_neg > 0 or not n_pos > 0:
        return None
    below = 0.0  # negative weight in lower bins
    wins = 0.0
    for b in sorted(negatives.keys() | positives.keys()):
        neg = negatives.get(b, 0)
        wins += positives.get(b, 0) * (below + 0.5 * neg)
        below += neg
    return float(wins / (n_pos * n_neg))


def _prf(tp: float, true: float, pred: float) -> tuple[float, float, float]:
    """Precision, recall and F1 with zero_division=0, as scikit-learn computes them."""
    precision = tp / pred if pred else 0.0
    recall = tp / true if true else 0.0
    f1 = 2 * tp / (true + pred) if true + pred else 0.0
    return float(precision), float(recall), float(f1)


def _empty_summary(n: float) -> dict[str, Any]:
    none3 = {"precision": None, "recall": None, "f1": None}
    return {
        "n": n,
        "accuracy": None,
        "balanced_accuracy": None,
        "macro": dict(none3),
        "weighted": dict(none3),
        "kappa": None,
        "mcc": None,
        "log_loss": None,
        "roc_auc": None,
        "per_class": {},
    }


class _MetricSet:
    """A weighted confusion matrix, log-loss sum and score histograms.

    Subclasses decide the weight of each prediction; ``_unit`` is the stored
    weight that counts as 1, so ``stored / _unit`` is the true weight.
    """

    def __init__(self, positive: Label | None, auc_bins: int) -> None:
        if auc_bins < 1:
            raise ValueError(f"auc_bins must be >= 1, got {auc_bins}")
        self.positive = positive
        self.auc_bins = auc_bins
        # true label -> predicted label -> weight; sparse, so O(classes seen together).
        self._cm: dict[Label, dict[Label, float]] = {}
        self._loss = 0.0
        # Score histograms of the positive class's probability: (negatives, positives).
        self._hist: tuple[dict[int, float], dict[int, float]] = ({}, {})
        self._unit = 1.0

    def auc_bin(self, proba: Mapping[Label, float]) -> int:
        """The histogram bin of the positive class's probability (0 without one)."""
        if self.positive is None:
            return 0
        return score_bin(proba.get(self.positive, 0.0), self.auc_bins)

    def update(self, y_true: Label, y_pred: Label, proba: Mapping[Label, float]) -> None:
        """Score one prediction against its label."""
        self.add_terms(y_true, y_pred, log_loss_term(y_true, proba), self.auc_bin(proba))

    def add_terms(self, y_true: Label, y_pred: Label, loss: float, auc_bin: int) -> None:
        """Score one prediction from its :func:`log_loss_term` and :meth:`auc_bin`
        (what :meth:`update` computes from ``proba``)."""
        raise NotImplementedError

    def _count_one(self, y_true: Label, y_pred: Label, loss: float, auc_bin: int) -> None:
        """Tally one prediction with weight 1 (the cumulative and rolling views)."""
        cm = self._cm
        row = cm.get(y_true)
        if row is None:
            row = cm[y_true] = {}
        row[y_pred] = row.get(y_pred, 0) + 1
        self._loss += loss
        positive = self.positive
        if positive is not None:
            hist = self._hist[y_true == positive]
            hist[auc_bin] = hist.get(auc_bin, 0) + 1

    def _count(self, stored: float) -> int | float:
        """A stored count as reported: an int, except for fading weights."""
        return int(stored)

    @property
    def n(self) -> int | float:
        """How many predictions were scored (their total weight when fading)."""
        return self._count(sum(sum(row.values()) for row in self._cm.values()) / self._unit)

    @property
    def accuracy(self) -> float | None:
        """``summary()["accuracy"]`` alone, without the rest of the summary (``None``
        before anything was scored): what a Flink gauge reads once per input batch.

        >>> m = CumulativeMetrics()
        >>> m.accuracy is None
        True
        >>> for y, p in [("a", "a"), ("a", "b"), ("b", "b")]:
        ...     m.update(y, p, {p: 1.0})
        >>> m.accuracy == m.summary()["accuracy"]
        True
        """
        unit = self._unit
        true: dict[Label, float] = {}
        correct: list[float] = []
        for t, row in self._cm.items():
            for p, stored in row.items():
                w = stored / unit
                true[t] = true.get(t, 0.0) + w
                if t == p:
                    correct.append(w)
        total = math.fsum(true.values())
        return math.fsum(correct) / total if total > 0 else None

    def summary(self) -> dict[str, Any]:
        """Every metric as a JSON-ready mapping; ``None`` where undefined."""
        unit = self._unit
        true: dict[Label, float] = {}
        pred: dict[Label, float] = {}
        tp: dict[Label, float] = {}
        off_diagonal = 0.0
        for t, row in self._cm.items():
            for p, stored in row.items():
                w = stored / unit
                true[t] = true.get(t, 0.0) + w
                pred[p] = pred.get(p, 0.0) + w
                if t == p:
                    tp[t] = w
                else:
                    off_diagonal += w
        classes = sorted(true.keys() | pred.keys(), key=class_key)
        total = math.fsum(true.values())
        if not classes or not total > 0:
            return _empty_summary(self._count(0))
        t_sum = [true.get(c, 0.0) for c in classes]
        p_sum = [pred.get(c, 0.0) for c in classes]
        tps = [tp.get(c, 0.0) for c in classes]
        per_class = {}
        prf = []
        for c, tp_c, t_c, p_c in zip(classes, tps, t_sum, p_sum, strict=True):
            precision, recall, f1 = _prf(tp_c, t_c, p_c)
            prf.append((precision, recall, f1))
            per_class[class_key(c)] = {
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "support": self._count(t_c),
            }
        k = len(classes)
        macro = [sum(m[j] for m in prf) / k for j in range(3)]
        weighted = [
            sum(m[j] * t for m, t in zip(prf, t_sum, strict=True)) / total for j in range(3)
        ]
        correct = math.fsum(tps)
        recalls = [tp_c / t_c for tp_c, t_c in zip(tps, t_sum, strict=True) if t_c > 0]
        names = ("precision", "recall", "f1")
        return {
            "n": self._count(total),
            "accuracy": correct / total,
            # Classes predicted but never true have no recall: left out, as in sklearn.
            "balanced_accuracy": sum(recalls) / len(recalls),
            "macro": dict(zip(names, macro, strict=True)),
            # Weighted sums of fading weights can round a hair past 1; keep the ranges.
            "weighted": {name: min(v, 1.0) for name, v in zip(names, weighted, strict=True)},
            "kappa": _kappa(off_diagonal, t_sum, p_sum, total),
            "mcc": max(-1.0, min(1.0, _mcc(correct, t_sum, p_sum, total))),
            "log_loss": self._loss / unit / total,
            "roc_auc": None if self.positive is None else _auc(*self._hist),
            "per_class": per_class,
        }


def _kappa(
    off_diagonal: float, t_sum: list[float], p_sum: list[float], total: float
) -> float | None:
    """Cohen's kappa as 1 - observed / expected disagreement (sklearn's formula)."""
    # Expected disagreement sums p_i * t_j over i != j; prefix and suffix sums of
    # t avoid the cancellation of (sum p)(sum t) - sum p_i t_i when one class dominates.
    k = len(t_sum)
    suffix = [0.0] * (k + 1)
    for i in range(k - 1, -1, -1):
        suffix[i] = suffix[i + 1] + t_sum[i]
    prefix = 0.0
    expected = 0.0
    for i in range(k):
        expected += p_sum[i] * (prefix + suffix[i + 1])
        prefix += t_sum[i]
    expected /= total
    if not expected > 0:
        return None  # one class only, in truth and prediction alike: undefined
    return float(1.0 - off_diagonal / expected)


def _mcc(correct: float, t_sum: list[float], p_sum: list[float], total: float) -> float:
    """Matthews correlation coefficient, multiclass (Gorodkin's R_K, as sklearn)."""
    # A constant truth or prediction has zero variance; sklearn then returns 0.
    # Test that directly rather than trusting total**2 - dot() to cancel exactly.
    if sum(1 for t in t_sum if t > 0) < 2 or sum(1 for p in p_sum if p > 0) < 2:
        return 0.0
    cov_tp = correct * total - sum(t * p for t, p in zip(t_sum, p_sum, strict=True))
    cov_pp = total**2 - sum(p * p for p in p_sum)
    cov_tt = total**2 - sum(t * t for t in t_sum)
    denominator = cov_pp * cov_tt
    if not denominator > 0:
        return 0.0
    return float(cov_tp / math.sqrt(denominator))


class CumulativeMetrics(_MetricSet):
    """Prequential metrics over every prediction scored so far.

    Memory: O(classes² + auc_bins) numbers, however long the stream.

    Parameters
    ----------
    positive
        The positive class, for ROC AUC; ``None`` leaves ``roc_auc`` out.
    auc_bins
        Equal-width score bins on [0, 1] for the ROC AUC histograms.
    """

    def __init__(self, positive: Label | None = None, auc_bins: int = 1000) -> None:
        super().__init__(positive, auc_bins)

    def add_terms(self, y_true: Label, y_pred: Label, loss: float, auc_bin: int) -> None:
        # Weight 1 each: counts only grow, so no entry is ever dropped.
        self._count_one(y_true, y_pred, loss, auc_bin)


class RollingMetrics(_MetricSet):
    """Prequential metrics over the last ``window`` predictions scored.

    Classes are those seen (as truth or prediction) inside the window.
    Memory: O(window).

    Parameters
    ----------
    window
        How many of the latest predictions to evaluate.
    positive, auc_bins
        As for :class:`CumulativeMetrics`.
    """

    def __init__(self, window: int, positive: Label | None = None, auc_bins: int = 1000) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        super().__init__(positive, auc_bins)
        self.window = window
        self._items: deque[tuple[Label, Label, float, int]] = deque()
        self._evicted = 0

    def update(self, y_true: Label, y_pred: Label, proba: Mapping[Label, float]) -> None:
        """Score one prediction, forgetting the oldest once the window is full."""
        self.add_terms(y_true, y_pred, log_loss_term(y_true, proba), self.auc_bin(proba))

    def add_terms(self, y_true: Label, y_pred: Label, loss: float, auc_bin: int) -> None:
        # Add the new item; then subtract the evicted one, dropping counts that reach 0
        # (they are exact integers) so the class set is the window's.
        items = self._items
        items.append((y_true, y_pred, loss, auc_bin))
        self._count_one(y_true, y_pred, loss, auc_bin)
        if len(items) > self.window:
            cm, positive = self._cm, self.positive
            old_true, old_pred, old_loss, old_bin = items.popleft()
            row = cm[old_true]
            count = row[old_pred] - 1
            if count:
                row[old_pred] = count
            else:
                del row[old_pred]
                if not row:
                    del cm[old_true]
            self._loss -= old_loss
            if positive is not None:
                hist = self._hist[old_true == positive]
                count = hist[old_bin] - 1
                if count:
                    hist[old_bin] = count
                else:
                    del hist[old_bin]
            self._evicted += 1
            if self._evicted % self.window == 0:
                # Adding and subtracting floats drifts; a fresh exact sum once
                # per window keeps the drift bounded at O(1) amortised cost.
                self._loss = math.fsum(map(itemgetter(2), items))

    @property
    def n(self) -> int:
        """How many predictions are in the window."""
        return len(self._items)


class FadingMetrics(_MetricSet):
    """Prequential metrics with a fading factor (Gama, Sebastião and Rodrigues 2013).

    Of ``n`` predictions scored, the i-th (from 0) has weight
    ``alpha ** (n - 1 - i)``: each metric is scikit-learn's with those
    ``sample_weight``. ``n`` and the supports are sums of weights (floats).

    Rather than multiply every count by ``alpha`` per update, each new
    prediction gets a weight ``1 / alpha`` times the last one's and counts are
    divided by the latest weight when read; everything is rescaled once that
    weight passes ``renormalise_above``. An update is O(1); memory is
    O(classes² + auc_bins). Every class ever seen stays in the class set
    (with a vanishing weight), as it would for scikit-learn.

    Parameters
    ----------
    alpha
        The fading factor, ``0 < alpha < 1``; ``1 / (1 - alpha)`` is the
        effective window.
    positive, auc_bins
        As for :class:`CumulativeMetrics`.
    """

    #: The latest weight at which stored counts are rescaled to keep them finite.
    renormalise_above = 1e100

    def __init__(self, alpha: float, positive: Label | None = None, auc_bins: int = 1000) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        super().__init__(positive, auc_bins)
        self.alpha = alpha
        self._unit = 0.0  # the latest prediction's stored weight; 0 before any

    def update(self, y_true: Label, y_pred: Label, proba: Mapping[Label, float]) -> None:
        """Score one prediction; older ones fade by ``alpha``."""
        self.add_terms(y_true, y_pred, log_loss_term(y_true, proba), self.auc_bin(proba))

    def add_terms(self, y_true: Label, y_pred: Label, loss: float, auc_bin: int) -> None:
        weight = self._unit / self.alpha if self._unit else 1.0
        if weight > self.renormalise_above:
            self._rescale(1.0 / weight)
            weight = 1.0
        self._unit = weight
        self._tally(y_true, y_pred, loss, auc_bin, weight)

    def _rescale(self, factor: float) -> None:
        # Entries that underflow to 0.0 are kept: their classes stay in the set.
        for row in self._cm.values():
            for p in row:
                row[p] *= factor
        for hist in self._hist:
            for b in hist:
                hist[b] *= factor
        self._loss *= factor

    def _tally(
        self, y_true: Label, y_pred: Label, loss: float, auc_bin: int, weight: float
    ) -> None:
        # Weights only grow here, so no entry ever returns to zero and none is dropped.
        row = self._cm.setdefault(y_true, {})
        row[y_pred] = row.get(y_pred, 0.0) + weight
        self._loss += weight * loss
        if self.positive is not None:
            hist = self._hist[y_true == self.positive]
            hist[auc_bin] = hist.get(auc_bin, 0.0) + weight

    def _count(self, stored: float) -> float:
        return float(stored)

    @property
    def n(self) -> float:
        """The total weight of the predictions scored."""
        if not self._unit:
            return 0.0
        return float(sum(sum(row.values()) for row in self._cm.values()) / self._unit)
