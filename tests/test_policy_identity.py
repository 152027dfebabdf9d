"""Policy identity: a stored book records its policy; another one is refused (issue 12 item 1)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from backorder import (
    BackorderBook,
    InMemoryRepository,
    LineStatus,
    Order,
    OrderLine,
    PartialFill,
    PolicyChanged,
    PolicyMismatch,
    PriorityTiers,
    SQLiteRepository,
    StrictFIFO,
    UnknownTier,
    policy_from_identity,
    policy_identity,
)
from backorder.testing import DictRepository, snapshot
from tests.helpers import TickingClock

DATA = Path(__file__).parent / "data"


def _tiered_book(path: Path) -> None:
    with BackorderBook.open(path, PriorityTiers(), TickingClock()) as book:
        book.place(Order("S-1", [OrderLine("LAMP", 1)]))
        book.place(Order("V-1", [OrderLine("LAMP", 1)], tier="vip"))


def test_a_stored_book_opened_with_another_policy_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    _tiered_book(path)
    before = path.read_bytes()
    with pytest.raises(PolicyMismatch, match=r"PriorityTiers\(tiers=.*PartialFill\(\)") as caught:
        BackorderBook.open(path, PartialFill())
    assert caught.value.stored == policy_identity(PriorityTiers())
    assert caught.value.given == "PartialFill()"
    assert path.read_bytes() == before


def test_opened_without_a_policy_a_stored_book_keeps_its_own(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    _tiered_book(path)
    with BackorderBook.open(path, clock=TickingClock()) as book:
        assert book.policy == PriorityTiers()
        book.place(Order("S-2", [OrderLine("LAMP", 1)]))
        assert [line.order_id for line in book.waiting("LAMP")] == ["V-1", "S-1", "S-2"]


def test_change_policy_reranks_records_and_tells(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    _tiered_book(path)
    with BackorderBook.open(path, clock=TickingClock()) as book:
        other = BackorderBook.open(path, PriorityTiers(), TickingClock())
        heard: list[object] = []
        book.subscribe(heard.append)
        result = book.change_policy(StrictFIFO())
        assert isinstance(result.events[0], PolicyChanged)
        assert result.events[0].new == "StrictFIFO()"
        assert heard == list(result.events)
        assert [line.order_id for line in book.waiting("LAMP")] == ["S-1", "V-1"]
        # the other handle follows the switch at its next operation
        other.place(Order("S-3", [OrderLine("LAMP", 1)]))
        assert other.policy == StrictFIFO()
        assert [line.order_id for line in other.waiting("LAMP")] == ["S-1", "V-1", "S-3"]
        other.close()
    with pytest.raises(PolicyMismatch):
        BackorderBook.open(path, PriorityTiers())
    with BackorderBook.open(path, StrictFIFO()) as again:
        assert again.position("V-1", "LAMP") == 2


def test_a_failed_change_of_policy_changes_nothing() -> None:
    book = BackorderBook(PriorityTiers(), clock=TickingClock())
    book.place(Order("C-1", [OrderLine("LAMP", 1)], tier="contract"))
    before = snapshot(book)
    with pytest.raises(UnknownTier, match="contract"):
        book.change_policy(PriorityTiers(("vip", "standard")))
    assert snapshot(book) == before
    assert book.policy == PriorityTiers()
    assert book.change_policy(PriorityTiers()).events == ()  # the same policy: nothing


def test_a_change_of_policy_is_stored_by_every_repository() -> None:
    repository = DictRepository()
    book = BackorderBook(PriorityTiers(), repository, TickingClock())
    book.place(Order("S-1", [OrderLine("LAMP", 1)]))
    book.change_policy(PartialFill())
    with pytest.raises(PolicyMismatch):
        BackorderBook(PriorityTiers(), repository.reopen(), TickingClock())
    assert BackorderBook(None, repository.reopen(), TickingClock()).policy == PartialFill()


def test_a_book_from_before_policy_identity_records_the_policy_it_is_opened_with(
    tmp_path: Path,
) -> None:
    path = tmp_path / "landed.db"
    shutil.copy(DATA / "landed-0.1.0.db", path)
    with BackorderBook.open(path, PriorityTiers()) as book:
        book.receive("LAMP", 1, reference="GRN-9")  # the first write records it
    with pytest.raises(PolicyMismatch):
        BackorderBook.open(path, StrictFIFO())


class _Mine:
    policy_id = "acme.policies.Mine/2"

    def rank(self, order: Order) -> int:
        return 0

    def allot(self, line: LineStatus, available: int) -> int:
        return min(available, line.backordered)


def test_custom_policies_are_known_by_their_policy_id(tmp_path: Path) -> None:
    assert policy_identity(_Mine()) == "acme.policies.Mine/2"
    assert policy_from_identity("acme.policies.Mine/2") is None
    path = tmp_path / "book.db"
    with BackorderBook.open(path, _Mine()) as book:
        book.place(Order("A-1", [OrderLine("MUG", 1)]))
    with pytest.raises(PolicyMismatch, match="pass the custom policy"):
        BackorderBook.open(path)
    with BackorderBook.open(path, _Mine()) as again:
        assert "A-1" in again


@pytest.mark.parametrize(
    "policy",
    [StrictFIFO(), PartialFill(), PriorityTiers(), PriorityTiers(("a", "b"), fill=StrictFIFO())],
    ids=repr,
)
def test_built_in_identities_read_back_as_the_same_policy(policy: object) -> None:
    assert policy_from_identity(policy_identity(policy)) == policy


@pytest.mark.parametrize(
    "text", ["__import__('os')", "PriorityTiers(tiers=())", "StrictFIFO(1)", "", "Mine()"]
)
def test_other_texts_are_no_built_in_policy(text: str) -> None:
    assert policy_from_identity(text) is None


class _Custom:
    """A policy of the user's own (by its `policy_id`)."""

    policy_id = "shop.custom"

    def rank(self, order: Order) -> int:
        return 0

    def allot(self, line: LineStatus, available: int) -> int:
        return min(available, line.backordered)


def test_a_book_over_the_same_in_memory_repository_follows_a_switch() -> None:
    # Two books over one InMemoryRepository share one state: when one
    # switches the policy, the other ranks, fills and promises by the new
    # one at its next call (read or write), as a stored book's other
    # handle does when it catches up; a custom policy it cannot follow is
    # refused (found by the contract machine's `change_policy` rule)
    repository = InMemoryRepository()
    first = BackorderBook(PriorityTiers(), repository, TickingClock())
    second = BackorderBook(PriorityTiers(), repository, TickingClock())
    first.place(Order("V-1", [OrderLine("LAMP", 2)], tier="vip"))
    first.change_policy(StrictFIFO())
    assert second.waiting("LAMP")[0].order_id == "V-1"
    assert second.policy == StrictFIFO()
    assert second.change_policy(StrictFIFO()).events == ()  # no switch: it has it
    second.place(Order("S-1", [OrderLine("LAMP", 1)]))
    second.receive("LAMP", 1)  # strict: the head needs 2, nothing moves
    assert [(line.order_id, line.allocated) for line in first.waiting("LAMP")] == [
        ("V-1", 0),
        ("S-1", 0),
    ]
    assert second.promise("LAMP", 1) == first.promise("LAMP", 1)
    first.change_policy(_Custom())
    with pytest.raises(PolicyMismatch, match=r"shop\.custom"):
        second.stock("LAMP")
    assert first.stock("LAMP").on_hand == 1


@pytest.mark.parametrize("where", ["memory", "sqlite"])
def test_switching_to_the_policy_a_book_has_after_an_abandoned_first_batch_is_nothing(
    tmp_path: Path, where: str
) -> None:
    # A new store records its policy at its first write; when that write was
    # an atomic batch abandoned, the book loaded again must still know its
    # policy: switching to it changes nothing (it used to record a switch
    # from the policy to itself)
    repository = (
        InMemoryRepository(outbox=True)
        if where == "memory"
        else SQLiteRepository(tmp_path / "b.db")
    )
    book = BackorderBook(PriorityTiers(preempt=True), repository, TickingClock())

    def abandoned() -> None:
        with book.batch(atomic=True):
            book.receive("MUG", 1)
            raise KeyError("abandoned")

    with pytest.raises(KeyError):
        abandoned()
    assert book.change_policy(PriorityTiers(preempt=True)).events == ()
    assert not book.pending_events()
    book.receive("MUG", 1)
    book.close()
    again = (
        BackorderBook.open(tmp_path / "b.db")
        if where == "sqlite"
        else BackorderBook(repository=repository)
    )
    with again:
        assert again.policy == PriorityTiers(preempt=True)
        assert again.stock("MUG").on_hand == 1


@pytest.mark.parametrize("where", ["memory", "sqlite"])
def test_switching_to_a_preempting_policy_rebalances_every_sku(tmp_path: Path, where: str) -> None:
    # A preempting policy rebalances every SKU an operation touches; a switch
    # to one touches every SKU: the contract order placed after a vip order
    # took the unit is served from it at once (it used to wait, against
    # invariant 9, until another operation touched the SKU; found by the
    # contract machine's `change_policy` rule, explore profile)
    repository = InMemoryRepository() if where == "memory" else SQLiteRepository(tmp_path / "b.db")
    book = BackorderBook(PriorityTiers(), repository, TickingClock())
    book.place(Order("V-1", [OrderLine("MUG", 1)], tier="vip"))
    book.receive("MUG", 1)
    book.place(Order("C-1", [OrderLine("MUG", 1)], tier="contract"))
    assert book.line("C-1", "MUG").allocated == 0  # (not preempting: it waits)
    result = book.change_policy(PriorityTiers(preempt=True))
    assert isinstance(result.events[0], PolicyChanged)
    assert (book.line("C-1", "MUG").allocated, book.line("V-1", "MUG").allocated) == (1, 0)
    assert [line.order_id for line in book.waiting("MUG")] == ["V-1"]
    book.inspect().check()
    book.ledger.verify()
    book.close()
