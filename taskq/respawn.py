"""When the supervisor may start a worker slot (worker-N) again after its worker died.

A worker that dies soon after its start, unexpectedly, may be crash-looping (a task module that fails to
import, a database it cannot reach, a task that gets it OOM-killed each time it runs): respawning it at
once, forever, would burn a core on forks. The back-off is kept per slot, not for the whole pool: one
slot crash-looping never holds back the respawn of another, so a pool with one bad slot keeps the others
running, and several slots each killed once (an OOM killer's sweep) all come back at once. Time is an
input (time.monotonic() seconds), so the schedule is tested without processes.
"""

from __future__ import annotations

from dataclasses import dataclass

QUICK_DEATH_SECONDS = 2.0  # a worker exiting unexpectedly sooner than this after its start died young
RESPAWN_BACKOFF_FIRST_SECONDS = 0.5  # the wait after a slot's second young death in a row; doubled for each next
RESPAWN_BACKOFF_MAX_SECONDS = 30.0


@dataclass
class _Slot:
    young_deaths: int = 0  # in a row; a worker that lived QUICK_DEATH_SECONDS or exited as asked resets it
    respawn_at: float = 0.0


class RespawnBackoff:
    """The respawn schedule of every slot: a slot's first young death respawns it at once (one death is
    not a loop), the second waits RESPAWN_BACKOFF_FIRST_SECONDS, each next one twice as long, up to
    RESPAWN_BACKOFF_MAX_SECONDS."""

    def __init__(
        self,
        quick_death_seconds: float = QUICK_DEATH_SECONDS,
        first_seconds: float = RESPAWN_BACKOFF_FIRST_SECONDS,
        max_seconds: float = RESPAWN_BACKOFF_MAX_SECONDS,
    ) -> None:
        self.quick_death_seconds = quick_death_seconds
        self.first_seconds = first_seconds
        self.max_seconds = max_seconds
        self._slots: dict[int, _Slot] = {}

    def delay(self, young_deaths: int) -> float:
        """Seconds a slot waits after `young_deaths` young deaths in a row."""
        if young_deaths <= 1:
            return 0.0
        exponent = min(young_deaths - 2, 64)  # 2**64 s is past any cap; a bigger one would overflow float
        return min(self.first_seconds * 2.0**exponent, self.max_seconds)

    def exited(self, slot: int, *, started: float, now: float, expected: bool) -> float:
        """The worker of `slot`, started at `started`, exited at `now` (`expected`: it was asked to, or
        exited 0). Returns the seconds before the slot may be started again (0: at once)."""
        state = self._slots.setdefault(slot, _Slot())
        if expected or now - started >= self.quick_death_seconds:
            state.young_deaths = 0
        else:
            state.young_deaths += 1
        seconds = self.delay(state.young_deaths)
        state.respawn_at = now + seconds
        return seconds

    def young_deaths(self, slot: int) -> int:
        state = self._slots.get(slot)
        return 0 if state is None else state.young_deaths

    def may_respawn(self, slot: int, now: float) -> bool:
        state = self._slots.get(slot)
        return state is None or now >= state.respawn_at
