"""The input joining of a task node, as plain logic: no DDS, a clock moved by hand."""

import logging

import pytest

from sustainml.task_inputs import Outcome, TaskInputs


class Msg:
    """Stands in for a message: only its task id matters to the joining."""

    def __init__(self, problem: str, iteration: int = 1, tag: str = "") -> None:
        self.task_id = (problem, iteration)
        self.tag = tag


def offer(book: TaskInputs, name: str, message: Msg, now_s: float = 0.0) -> Outcome | None:
    return book.offer(name, message.task_id, message.task_id, message, now_s)


def two_inputs(**options) -> TaskInputs:
    return TaskInputs({"task": False, "candidates": False}, **options)


def test_inputs_of_one_task_fire_once_all_are_there_whatever_their_order():
    book = two_inputs()
    a_task, b_cands, a_cands = Msg("a"), Msg("b"), Msg("a")
    assert offer(book, "task", a_task) is None
    assert offer(book, "candidates", b_cands) is None
    assert book.queued == 0 and book.held_tasks == [("a", 1), ("b", 1)]
    offer(book, "candidates", a_cands)
    work = book.next_work()
    assert work.key == ("a", 1) and work.inputs == {"task": a_task, "candidates": a_cands}
    assert book.held_tasks == [("b", 1)] and book.next_work() is None


def test_a_repeated_input_is_answered_from_memory_not_processed_twice():
    book = TaskInputs({"task": False})
    offer(book, "task", Msg("a"))
    work = book.next_work()
    assert offer(book, "task", Msg("a")) is None and book.queued == 0      # still in work: nothing
    book.done(work, Outcome(output="candidates of a"))
    assert offer(book, "task", Msg("a")) == Outcome(output="candidates of a")
    assert book.queued == 0


def test_a_rejection_is_remembered_but_a_forgotten_outcome_lets_a_repeat_run_again():
    book = TaskInputs({"task": False})
    offer(book, "task", Msg("bad"))
    book.done(book.next_work(), Outcome(error="no model fits"))
    assert offer(book, "task", Msg("bad")) == Outcome(error="no model fits")
    offer(book, "task", Msg("flaky"))
    book.done(book.next_work(), None)        # e.g. an internal error: not the input's fault
    assert offer(book, "task", Msg("flaky")) is None
    assert book.next_work().key == ("flaky", 1)


def test_a_kept_input_fires_with_each_message_of_the_other():
    hosts = iter(["laptop", "server"])
    book = TaskInputs({"task": True, "measurement": False},
                      fire_key=lambda task_id, inputs: (task_id, inputs["measurement"].tag))
    offer(book, "task", Msg("a"))
    for host in ("laptop", "server"):
        offer(book, "measurement", Msg("a", tag=host))
        work = book.next_work()
        assert work.inputs["measurement"].tag == next(hosts) and work.fire == (("a", 1), host)
    assert book.held_tasks == [("a", 1)]    # the task stays for further measurements


def test_an_ended_task_drops_what_is_held_and_queued_and_what_comes_later(caplog):
    book = two_inputs()
    offer(book, "task", Msg("a"))
    offer(book, "task", Msg("b"))
    offer(book, "candidates", Msg("b"))
    with caplog.at_level(logging.INFO):
        book.finish(("a", 1), "cancelled")
        book.finish(("b", 1), "done")
    assert book.held_tasks == [] and book.queued == 0
    assert "dropped held inputs of a/1: task cancelled" in caplog.text
    assert "dropped queued work of b/1: task done" in caplog.text
    assert offer(book, "task", Msg("a")) is None and book.held_tasks == []
    assert book.ended(("a", 1)) == "cancelled" and book.ended(("c", 1)) == ""


def test_partial_inputs_expire_and_the_number_held_is_bounded(caplog):
    book = two_inputs(ttl_s=10.0, max_pending=2)
    offer(book, "task", Msg("old"), now_s=0.0)
    offer(book, "task", Msg("b"), now_s=5.0)
    offer(book, "task", Msg("c"), now_s=11.0)          # "old" is 11 s old: expired
    assert book.held_tasks == [("b", 1), ("c", 1)]
    assert "expired partial inputs of old/1 after 10 s" in caplog.text
    offer(book, "task", Msg("d"), now_s=12.0)          # three tasks > 2: the oldest goes
    assert book.held_tasks == [("c", 1), ("d", 1)]
    assert "more than 2 tasks held" in caplog.text


def test_memory_of_ended_tasks_and_outcomes_is_bounded():
    book = TaskInputs({"task": False}, remember_finished=2, remember_outcomes=2)
    for name in "abc":
        book.finish((name, 1), "done")
    assert book.ended(("a", 1)) == "" and book.ended(("c", 1)) == "done"
    for name in "xyz":
        offer(book, "task", Msg(name))
        book.done(book.next_work(), Outcome(output=name))
    assert offer(book, "task", Msg("x")) is None       # forgotten: processed again
    assert book.next_work().key == ("x", 1)


def test_an_unknown_input_name_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown input 'cands'; this node's inputs: task, candidates"):
        offer(two_inputs(), "cands", Msg("a"))


def test_an_ended_tasks_outputs_are_forgotten_so_memory_stays_flat():
    # A node kept each firing's output (50-80 KB for a carbon footprint) after its task ended, though an
    # ended task's inputs are dropped: the carbon tracker grew by ~270 KB per task (bench/carbon_growth.py).
    book = TaskInputs({"task": False}, remember_outcomes=1024)
    for i in range(50):
        offer(book, "task", Msg(f"t{i}"))
        work = book.next_work()
        book.done(work, Outcome(output=f"output {i}"))
        assert offer(book, "task", Msg(f"t{i}")).output == f"output {i}"   # a repeat while it runs
        book.finish(work.key, "done")
    assert len(book._outcomes) == 0 and len(book._fires) == 0
