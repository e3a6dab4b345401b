"""Champion and challengers per model key: every candidate pipeline learns the same
training stream and is scored on the same labels; the best one serves.

The serving pipeline (the champion, ``main`` at first) is the key's model; the others
(challengers) predict every inline-labelled event before learning it (shadow scoring).
Every :data:`CHECK_EVERY` scored events, once the key has ``selection.min_scored``, the
challenger with the best rolling ``selection.metric`` replaces the champion if it beats
it by more than ``selection.margin``: a promotion.

>>> from stratiflow.config import load_config
>>> cfg = load_config({"candidates": [{"name": "nb", "model": ["naive_bayes.GaussianNB"]}]})
>>> selection = Selection.new(cfg.selection, cfg.candidates, positive=True, auc_bins=10)
>>> selection.champion, [c.name for c in selection.challengers]
('main', ['nb'])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stratiflow.config.model import ModelStep, build_model
from stratiflow.config.selection import MAIN, Candidate, SelectionSettings
from stratiflow.evaluation.metrics import RollingMetrics
from stratiflow.records import Label

__all__ = ["CHECK_EVERY", "Challenger", "Selection"]

#: Scored events between two comparisons (a summary of every rolling window is not free).
CHECK_EVERY = 50


@dataclass
class Challenger:
    """A pipeline that is not serving: its model, what it learned, how it scores."""

    name: str
    model: Any
    rolling: RollingMetrics
    learned: int = 0
    scored: int = 0

    def score(self, y_true: Label, proba: dict[Label, float] | None) -> None:
        """Score the challenger's answer for an event (``None`` or empty: it had none)."""
        if proba:
            self.rolling.update(y_true, max(proba, key=proba.__getitem__), proba)
            self.scored += 1


@dataclass
class Selection:
    """The champion's name and rolling metrics, and the challengers (picklable).

    Parameters
    ----------
    settings
        The ``selection`` section.
    champion_rolling
        The serving pipeline's rolling metrics over ``settings.window`` scored events.
    """

    settings: SelectionSettings
    champion_rolling: RollingMetrics
    challengers: list[Challenger] = field(default_factory=list)
    champion: str = MAIN
    promotions: int = 0
    #: Each pipeline's steps by name (``main`` included): what a fresh copy is built from.
    steps: dict[str, tuple[ModelStep, ...]] = field(default_factory=dict)

    @classmethod
    def new(
        cls,
        settings: SelectionSettings,
        candidates: tuple[Candidate, ...],
        *,
        positive: Label | None,
        auc_bins: int,
        main: tuple[ModelStep, ...] = (),
    ) -> Selection:
        """``main`` serving, every candidate a fresh challenger.

        Parameters
        ----------
        settings
            The ``selection`` section.
        candidates
            The ``candidates`` section.
        positive, auc_bins
            As for the key's metrics (:class:`~stratiflow.evaluation.metrics.RollingMetrics`).
        main
            The ``model`` section's steps (for a fresh copy of ``main``).

        Returns
        -------
        Selection
            Nothing learned or scored yet.
        """

        def rolling() -> RollingMetrics:
            return RollingMetrics(settings.window, positive=positive, auc_bins=auc_bins)

        challengers = [Challenger(c.name, build_model(c.model), rolling()) for c in candidates]
        steps = {MAIN: tuple(main), **{c.name: c.model for c in candidates}}
        return cls(settings, rolling(), challengers, steps=steps)

    def fresh_champion(self) -> Any:
        """A new, untrained model of the serving pipeline (for a drift reset or background)."""
        return build_model(self.steps[self.champion])

    def shadow_predict(self, x: dict[str, Any]) -> list[dict[Label, float] | None]:
        """Every challenger's probabilities for an event (``None``: it raised)."""
        out: list[dict[Label, float] | None] = []
        for c in self.challengers:
            try:
                out.append(c.model.predict_proba_one(x))
            except Exception:  # a challenger that cannot answer is not scored on it
                out.append(None)
        return out

    def learn(self, x: dict[str, Any], y: Label) -> None:
        """Every challenger learns one example (a failure is skipped, not counted)."""
        for c in self.challengers:
            try:
                c.model.learn_one(x, y)
            except Exception:  # River raises assorted errors on odd inputs
                continue
            c.learned += 1

    def score(
        self,
        y_true: Label,
        y_pred: Label,
        proba: Mapping[Label, float],
        shadows: list[dict[Label, float] | None] | None,
    ) -> None:
        """Score the champion's prediction and the challengers' on the same label."""
        self.champion_rolling.update(y_true, y_pred, proba)
        if shadows is not None:
            for c, p in zip(self.challengers, shadows, strict=True):
                c.score(y_true, p)

    def score_by_name(
        self,
        y_true: Label,
        y_pred: Label,
        proba: Mapping[Label, float],
        shadows: Mapping[str, dict[Label, float] | None] | None,
    ) -> None:
        """:meth:`score` for a delayed label: the challengers' answers were stored by name
        when the event was predicted (a promotion may have reordered them since)."""
        self.champion_rolling.update(y_true, y_pred, proba)
        if shadows:
            for c in self.challengers:
                c.score(y_true, shadows.get(c.name))

    def value(self, rolling: RollingMetrics) -> float | None:
        """The selection metric of one rolling window (``None``: nothing scored)."""
        summary = rolling.summary()
        if not summary["n"]:
            return None
        metric = self.settings.metric
        found = summary["macro"]["f1"] if metric == "macro_f1" else summary[metric]
        return None if found is None else float(found)

    def better(self, challenger: float | None, champion: float | None) -> bool:
        """Does ``challenger`` beat ``champion`` by more than the margin?"""
        if challenger is None or champion is None:
            return False
        if self.settings.metric == "log_loss":  # lower is better
            return challenger < champion - self.settings.margin
        return challenger > champion + self.settings.margin

    def candidate_to_promote(self, scored: int) -> tuple[int, float, float] | None:
        """The challenger to promote now (index, its value, the champion's), if any."""
        if scored < self.settings.min_scored or scored % CHECK_EVERY:
            return None
        champion = self.value(self.champion_rolling)
        best: tuple[int, float, float] | None = None
        for i, c in enumerate(self.challengers):
            if c.scored < self.settings.min_scored:
                continue
            value = self.value(c.rolling)
            if value is None or champion is None or not self.better(value, champion):
                continue
            lower = self.settings.metric == "log_loss"
            if best is None or (value < best[1] if lower else value > best[1]):
                best = (i, value, champion)  # the first of equals wins: config order
        return best

    def promote(self, index: int, serving: Any, serving_learned: int) -> Challenger:
        """Swap the champion and challenger ``index``; returns the new champion's record.

        The former champion becomes a challenger with its model and rolling metrics.
        """
        new = self.challengers[index]
        self.challengers[index] = Challenger(
            self.champion, serving, self.champion_rolling, serving_learned, 0
        )
        self.champion, self.champion_rolling = new.name, new.rolling
        self.promotions += 1
        return new

    def summary(self, serving_learned: int) -> dict[str, Any]:
        """The ``candidates`` section of the metrics record."""
        pipelines = {
            self.champion: {
                "role": "champion",
                "learned": serving_learned,
                self.settings.metric: self.value(self.champion_rolling),
            }
        }
        for c in self.challengers:
            pipelines[c.name] = {
                "role": "challenger",
                "learned": c.learned,
                self.settings.metric: self.value(c.rolling),
            }
        return {
            "champion": self.champion,
            "metric": self.settings.metric,
            "promotions": self.promotions,
            "pipelines": dict(sorted(pipelines.items())),
        }
