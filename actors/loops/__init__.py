"""Durable pilot/land loops (DESIGN §4.10), owned by the daemon.

The sans-IO core: :mod:`~actors.loops.verdicts` reads a tick's machine verdicts,
:mod:`~actors.loops.driver` is the verdict table (continue, strike, stop),
:mod:`~actors.loops.schedule` says when the next tick runs and :mod:`~actors.loops.runner` runs a
loop's ticks through an injected ``TickIO``. :mod:`~actors.loops.store` keeps loops, ticks and
strikes in the state database; :mod:`~actors.loops.actor` is the daemon's loop actor.
"""
