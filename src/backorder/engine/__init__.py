"""The engine: the book's working state and every change to it. No storage, no I/O.

Modules: `state` (per-SKU queues and indexes), `changes` (typed change
records and the undo log), `core` (`Engine`: the policy and the fill loop),
`etas` (promised dates), and one module per family of operations:
`orders`, `stock`, `supply`, `holds` and `controls`; `checks` verifies every
internal invariant.
"""
