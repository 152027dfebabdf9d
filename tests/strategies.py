"""Hypothesis strategies shared by every property test."""

from __future__ import annotations

from hypothesis import strategies as st

from backorder import MAX_QUANTITY, Order, OrderLine

SKUS = ("MUG", "TEE", "CAP")
TIERS = ("contract", "vip", "standard")

quantities = st.integers(min_value=1, max_value=8)
skus = st.sampled_from(SKUS)
tiers = st.sampled_from(TIERS)

bad_quantities = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=MAX_QUANTITY + 1),
    st.booleans(),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.none(),
)


@st.composite
def order_lines(draw: st.DrawFn) -> tuple[OrderLine, ...]:
    """One to three lines on distinct SKUs."""
    chosen = draw(st.lists(skus, min_size=1, max_size=3, unique=True))
    return tuple(OrderLine(sku, draw(quantities)) for sku in chosen)


def orders(order_id: str) -> st.SearchStrategy[Order]:
    """An order with the given id, random lines, tier and ship-complete flag."""
    return st.builds(
        Order,
        id=st.just(order_id),
        lines=order_lines(),
        tier=tiers,
        ship_complete=st.booleans(),
    )
