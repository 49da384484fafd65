"""The respawn back-off of the supervisor's worker slots, on explicit times (taskq/respawn.py)."""

from __future__ import annotations

from taskq.respawn import QUICK_DEATH_SECONDS, RESPAWN_BACKOFF_MAX_SECONDS, RespawnBackoff


def crash_loop(backoff: RespawnBackoff, slot: int, deaths: int, start: float = 100.0) -> tuple[list[float], float]:
    """`deaths` workers of `slot`, each started as soon as the slot may be and dead 0.1 s later; returns the
    delays the slot was given and the time of the last death."""
    delays = []
    now = start
    for _ in range(deaths):
        started = now
        now = started + 0.1
        delays.append(backoff.exited(slot, started=started, now=now, expected=False))
        now += delays[-1]
    return delays, now - delays[-1]


def test_a_slot_dying_young_in_a_row_waits_0_then_doubles_from_half_a_second_to_the_cap() -> None:
    delays, _ = crash_loop(RespawnBackoff(), 1, 10)
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, RESPAWN_BACKOFF_MAX_SECONDS, 30.0, 30.0]


def test_may_respawn_only_once_its_delay_has_passed() -> None:
    backoff = RespawnBackoff()
    _, died = crash_loop(backoff, 1, 3)  # the third young death in a row: 1 s
    assert not backoff.may_respawn(1, died)
    assert not backoff.may_respawn(1, died + 0.999)
    assert backoff.may_respawn(1, died + 1.0)


def test_one_crash_looping_slot_never_holds_back_another() -> None:
    backoff = RespawnBackoff()
    _, died = crash_loop(backoff, 1, 8)  # slot 1 now waits 30 s
    assert not backoff.may_respawn(1, died + 1)
    # Slot 2's worker dies too, young or old: its slot is started again at once.
    assert backoff.exited(2, started=died - 0.5, now=died, expected=False) == 0.0
    assert backoff.may_respawn(2, died)
    assert backoff.exited(3, started=died - 60, now=died, expected=False) == 0.0
    assert backoff.may_respawn(3, died)
    # A slot never used has nothing to wait for.
    assert backoff.may_respawn(4, 0.0)


def test_an_oom_sweep_killing_every_young_worker_once_respawns_them_all_at_once() -> None:
    backoff = RespawnBackoff()
    assert [backoff.exited(slot, started=10.0, now=10.5, expected=False) for slot in (1, 2, 3, 4)] == [0.0] * 4
    assert all(backoff.may_respawn(slot, 10.5) for slot in (1, 2, 3, 4))


def test_a_worker_that_lived_long_enough_or_exited_as_asked_resets_its_slot() -> None:
    backoff = RespawnBackoff()
    _, died = crash_loop(backoff, 1, 5)
    assert backoff.young_deaths(1) == 5
    assert backoff.exited(1, started=died, now=died + QUICK_DEATH_SECONDS, expected=False) == 0.0
    assert backoff.young_deaths(1) == 0
    crash_loop(backoff, 1, 4, start=died + 10)
    assert backoff.exited(1, started=died + 100, now=died + 100.1, expected=True) == 0.0  # retired, recycled, exit 0
    assert backoff.young_deaths(1) == 0
    assert backoff.exited(1, started=died + 200, now=died + 200.1, expected=False) == 0.0  # the first again


def test_the_schedule_takes_its_limits_as_arguments() -> None:
    backoff = RespawnBackoff(quick_death_seconds=1.0, first_seconds=0.25, max_seconds=1.0)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert backoff.delay(10_000) == 1.0  # no float overflow on a slot that crash-looped for days
    assert backoff.exited(1, started=0.0, now=1.0, expected=False) == 0.0 and backoff.young_deaths(1) == 0
