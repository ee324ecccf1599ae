"""WriteBehind: rows written by a background thread in batches; submit never waits for the disk."""

from __future__ import annotations

import logging
import threading

import pytest

from fake_enterprise.write_behind import WriteBehind, WriteBehindClosedError

# One test ends a writer thread with SystemExit on purpose; pytest reports how it ended.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


class GatedWriter:
    """A `write` that records each batch, blocking while its gate is shut."""

    def __init__(self, *, open_gate: bool = True) -> None:
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        if open_gate:
            self.gate.set()
        self.entered = threading.Event()
        self.fail_with: Exception | None = None

    def __call__(self, rows: list[str]) -> None:
        self.entered.set()
        assert self.gate.wait(timeout=10)
        if self.fail_with is not None:
            raise self.fail_with
        self.batches.append(list(rows))


def test_submit_returns_while_the_write_is_stuck_and_later_rows_form_one_batch_in_order() -> None:
    writer = GatedWriter(open_gate=False)
    behind: WriteBehind[str] = WriteBehind(writer, name="test")
    behind.submit(["a"])
    assert writer.entered.wait(timeout=10)  # the thread is inside the write of "a", blocked
    for n in range(3):
        behind.submit([f"b{n}", f"c{n}"])  # returns at once: nothing waits for the disk
    assert not behind.flush(timeout=0.05)  # "a" is not written yet, so flush times out
    writer.gate.set()
    assert behind.flush(timeout=10)
    assert writer.batches == [["a"], ["b0", "c0", "b1", "c1", "b2", "c2"]]
    behind.close()


def test_flush_sees_every_row_submitted_before_it() -> None:
    writer = GatedWriter()
    behind: WriteBehind[int] = WriteBehind(writer, name="test")  # type: ignore[arg-type]
    for number in range(200):
        behind.submit([number])
    assert behind.flush(timeout=10)
    assert [row for batch in writer.batches for row in batch] == list(range(200))
    behind.close()


def test_an_empty_submit_does_not_make_flush_wait() -> None:
    behind: WriteBehind[str] = WriteBehind(GatedWriter(), name="test")
    behind.submit([])
    assert behind.flush(timeout=1)
    behind.close()


def test_a_failed_batch_is_logged_by_type_only_and_the_next_one_is_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = GatedWriter()
    behind: WriteBehind[str] = WriteBehind(writer, name="token-events")
    writer.fail_with = OSError("disk full at /secret/path")
    with caplog.at_level(logging.WARNING, logger="fake_enterprise.write_behind"):
        behind.submit(["lost-row"])
        assert behind.flush(timeout=10)
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["token-events: 1 rows not written (OSError)"]
    writer.fail_with = None
    behind.submit(["kept"])
    assert behind.flush(timeout=10)
    assert writer.batches == [["kept"]]
    behind.close()


def test_close_writes_what_is_pending_and_later_submits_are_refused() -> None:
    writer = GatedWriter(open_gate=False)
    behind: WriteBehind[str] = WriteBehind(writer, name="test")
    behind.submit(["first"])
    assert writer.entered.wait(timeout=10)
    behind.submit(["pending"])
    writer.gate.set()
    behind.close()
    assert writer.batches == [["first"], ["pending"]]
    with pytest.raises(WriteBehindClosedError):
        behind.submit(["late"])
    assert "closed=True" in repr(behind)


def test_the_thread_lingers_so_rows_of_many_requests_share_one_write_and_flush_cuts_it_short() -> None:
    writer = GatedWriter()
    behind: WriteBehind[int] = WriteBehind(writer, name="test", linger=30.0)  # type: ignore[arg-type]
    for number in range(50):
        behind.submit([number])
    assert behind.flush(timeout=10)  # well before the 30 s linger is over
    assert writer.batches == [list(range(50))]
    behind.submit([50])
    behind.close()  # nor does close wait it out
    assert writer.batches == [list(range(50)), [50]]


def test_a_writer_thread_that_dies_holds_up_no_flush_and_the_next_submit_starts_another() -> None:
    writer = GatedWriter()
    behind: WriteBehind[str] = WriteBehind(writer, name="dying-writer", linger=0)
    writer.fail_with = SystemExit()  # not an Exception: it ends the thread
    behind.submit(["lost"])
    assert behind.flush(timeout=10)
    for thread in [thread for thread in threading.enumerate() if thread.name == "dying-writer"]:
        thread.join(timeout=10)  # gone within this test, so its end is reported here
    writer.fail_with = None
    behind.submit(["after"])
    assert behind.flush(timeout=10)
    assert writer.batches == [["after"]]
    behind.close()
