"""The figure of a simulation (`SimulationResult.plot`): needs matplotlib."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ._tables import optional


class _Measured(Protocol):
    """What the figure reads of a `SimulationResult`."""

    @property
    def measures(self) -> Sequence[Any]: ...
    @property
    def waits(self) -> Mapping[tuple[str, str], Sequence[float]]: ...
    @property
    def curves(self) -> Mapping[str, Any]: ...


# one colour (colour-blind safe), line style and marker per policy, in order
_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
_STYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def _style(index: int) -> dict[str, Any]:
    return {
        "color": _COLOURS[index % len(_COLOURS)],
        "linestyle": _STYLES[index % len(_STYLES)],
        "marker": _MARKERS[index % len(_MARKERS)],
    }


def figure(result: _Measured) -> Any:
    """Waits per tier (box plots) and backordered / on hand over time."""
    figure_module = optional("matplotlib.figure", "plot")
    patches = optional("matplotlib.patches", "plot")
    figure = figure_module.Figure(figsize=(15, 4.8), layout="constrained")
    waits_axes, backordered_axes, on_hand_axes = figure.subplots(1, 3)
    policies = list(dict.fromkeys(m.policy for m in result.measures))
    tiers = sorted({tier for _, tier in result.waits})
    width = 0.8 / max(1, len(policies))
    handles = []
    for index, policy in enumerate(policies):
        style = _style(index)
        positions = [t + (index - (len(policies) - 1) / 2) * width for t in range(len(tiers))]
        data = [list(result.waits.get((policy, tier), ())) for tier in tiers]
        kept = [(p, d) for p, d in zip(positions, data, strict=True) if d]
        if kept:
            boxes = waits_axes.boxplot(
                [d for _, d in kept],
                positions=[p for p, _ in kept],
                widths=width * 0.85,
                showfliers=False,
                patch_artist=True,
                manage_ticks=False,
            )
            for box in boxes["boxes"]:
                box.set_facecolor(style["color"])
                box.set_alpha(0.55)
                box.set_hatch(("", "//", "..", "xx")[index % 4])
            for median in boxes["medians"]:
                median.set_color("black")
        handles.append(
            patches.Patch(
                facecolor=style["color"],
                alpha=0.55,
                hatch=("", "//", "..", "xx")[index % 4],
                label=policy,
            )
        )
    waits_axes.set_xticks(range(len(tiers)), tiers)
    waits_axes.set_xlabel("tier")
    waits_axes.set_ylabel("days from order to fully allocated")
    waits_axes.set_title("wait of back-ordered orders (box: quartiles)")
    if handles:
        waits_axes.legend(handles=handles, title="policy", fontsize=8)
    first = min((s[0][0] for s in result.curves.values() if s), default=None)
    for index, (policy, samples) in enumerate(result.curves.items()):
        if not samples or first is None:
            continue
        style = _style(index)
        days = [(sample[0] - first).total_seconds() / 86_400 for sample in samples]
        marks = max(1, len(samples) // 12)
        for axes, column in ((backordered_axes, 2), (on_hand_axes, 1)):
            axes.plot(
                days,
                [sample[column] for sample in samples],
                label=policy,
                markevery=marks,
                markersize=4,
                linewidth=1.4,
                **style,
            )
    for axes, what in ((backordered_axes, "backordered"), (on_hand_axes, "on hand")):
        axes.set_xlabel("time (days since the first event)")
        axes.set_ylabel(f"units {what} (all SKUs)")
        axes.set_title(f"units {what} over time")
        if result.curves:
            axes.legend(title="policy", fontsize=8)
        axes.grid(alpha=0.3)
    return figure
