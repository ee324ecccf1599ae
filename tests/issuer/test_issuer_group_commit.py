"""GroupCommit: the rows of one event-loop turn written together, each submitter told once committed."""

from __future__ import annotations

import asyncio
import threading

import pytest

from fake_enterprise.group_commit import GroupCommit


class RecordingWriter:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.fail_with: Exception | None = None

    def __call__(self, rows: list[str]) -> None:
        self.batches.append(list(rows))
        if self.fail_with is not None:
            raise self.fail_with


def test_requests_of_one_loop_turn_share_one_write_in_order() -> None:
    async def scenario() -> list[list[str]]:
        writer = RecordingWriter()
        commit: GroupCommit[str] = GroupCommit(writer)
        await asyncio.gather(*(commit.submit([f"a{n}", f"b{n}"]) for n in range(5)))
        await commit.submit(["later"])
        return writer.batches

    batches = asyncio.run(scenario())
    assert batches == [[row for n in range(5) for row in (f"a{n}", f"b{n}")], ["later"]]


def test_a_submitter_returns_only_after_its_rows_are_written() -> None:
    async def scenario() -> None:
        writer = RecordingWriter()
        commit: GroupCommit[str] = GroupCommit(writer)
        task = asyncio.create_task(commit.submit(["x"]))
        await asyncio.sleep(0)  # the task has queued its rows; the write is due at the end of the turn
        assert writer.batches == [] and not task.done()
        await task
        assert writer.batches == [["x"]]

    asyncio.run(scenario())


def test_a_failed_write_reaches_every_submitter_of_its_batch_and_the_next_batch_still_works() -> None:
    async def scenario() -> None:
        writer = RecordingWriter()
        commit: GroupCommit[str] = GroupCommit(writer)
        writer.fail_with = OSError("disk full")
        results = await asyncio.gather(*(commit.submit([name]) for name in "pqr"), return_exceptions=True)
        assert [type(result) for result in results] == [OSError] * 3
        writer.fail_with = None
        await commit.submit(["after"])
        assert writer.batches == [["p", "q", "r"], ["after"]]

    asyncio.run(scenario())


def test_a_cancelled_submitter_does_not_disturb_the_others() -> None:
    async def scenario() -> None:
        writer = RecordingWriter()
        commit: GroupCommit[str] = GroupCommit(writer)
        cancelled = asyncio.create_task(commit.submit(["gone"]))
        kept = asyncio.create_task(commit.submit(["kept"]))
        await asyncio.sleep(0)
        cancelled.cancel()
        await kept
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert writer.batches == [["gone", "kept"]]

    asyncio.run(scenario())


def test_rows_from_another_event_loop_are_written_at_once_not_lost() -> None:
    writer = RecordingWriter()
    commit: GroupCommit[str] = GroupCommit(writer)

    async def first_loop() -> None:
        pending = asyncio.create_task(commit.submit(["first"]))
        await asyncio.sleep(0)  # "first" is queued; its write is due at the end of this turn
        # Still in this turn: a second loop (another thread's server, in tests) submits meanwhile.
        other = threading.Thread(target=asyncio.run, args=(commit.submit(["other loop"]),))
        other.start()
        other.join()
        await pending

    asyncio.run(first_loop())
    assert writer.batches == [["other loop"], ["first"]]
