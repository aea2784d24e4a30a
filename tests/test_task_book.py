"""The orchestrator's task book as plain logic: stages, fan-out to hosts, failures, restarts."""

import pytest

from sustainml import msg
from sustainml_nodes.orchestrator.store import TaskStore
from sustainml_nodes.orchestrator.tasks import TaskBook


def status(node, kind, host, state=msg.NodeState.NODE_IDLE, pid=1, task=None, message="", started=1.0):
    return msg.NodeStatus(node=node, kind=kind, host=host, pid=pid, state=state, task_id=task or msg.TaskId(),
                          message=message, started_unix_s=started)


@pytest.fixture
def book():
    b = TaskBook(TaskStore(":memory:"), stage_timeout_s=100, node_down_grace_s=10)
    for host in ("laptop", "gpu"):
        b.on_node_status(status(f"hw_constraints@{host}", "hw_constraints", host), 0.0)
    return b


def problem():
    return msg.UserInput(text="predict tool wear", task_type_hint="tabular_regression",
                         dataset=msg.DatasetInfo(num_samples=100), train_region="DEU")


def outputs(task_id, host):
    candidate = msg.ModelCandidate(name="tabular_mlp", quality_metric="rmse", quality_value=0.5)
    measurement = msg.HardwareMeasurement(task_id=task_id, host=host, measurements=[msg.JobMeasurement(
        model="tabular_mlp", device="cpu", host=host, latency_p50_ms=1.0, energy_per_inference_j=0.01,
        energy_method="estimate")], plan_done=True)
    footprint = msg.CarbonFootprint(task_id=task_id, host=host, footprints=[msg.FootprintDetail(
        model="tabular_mlp", device="cpu", host=host, region="DEU", total_co2_g=1.0)])
    encoded = msg.EncodedTask(task_id=task_id, task_type="tabular_regression", metric="rmse")
    return encoded, msg.ModelCandidates(task_id=task_id, candidates=[candidate]), measurement, footprint


def results(actions):
    return [a.message for a in actions if isinstance(a.message, msg.TaskResult)]


def test_a_task_fans_out_to_every_hardware_host_and_completes(book):
    task_id, _ = book.submit(problem())
    encoded, candidates, m_laptop, f_laptop = outputs(task_id, "laptop")
    _, _, m_gpu, f_gpu = outputs(task_id, "gpu")
    book.on_encoded(encoded)
    book.on_candidates(candidates)
    assert book.tasks[(task_id.problem_id, 1)].hosts == {"gpu": "measuring", "laptop": "measuring"}
    assert not results(book.on_measurement(m_laptop) + book.on_footprint(f_laptop))
    done = results(book.on_measurement(m_gpu) + book.on_footprint(f_gpu))
    assert done[0].state == msg.TaskState.TASK_DONE
    assert {o.host for o in done[0].options} == {"laptop", "gpu"}


def test_outputs_arriving_early_are_kept(book):
    task_id, _ = book.submit(problem())
    encoded, candidates, m_laptop, f_laptop = outputs(task_id, "laptop")
    _, _, m_gpu, f_gpu = outputs(task_id, "gpu")
    for early in (m_gpu, f_gpu, m_laptop, f_laptop, candidates):
        assert not results(book.on_measurement(early) if isinstance(early, msg.HardwareMeasurement) else
                           book.on_footprint(early) if isinstance(early, msg.CarbonFootprint) else
                           book.on_candidates(early))
    assert results(book.on_encoded(encoded))[0].state == msg.TaskState.TASK_DONE


def test_a_footprint_that_overtakes_its_measurement_still_completes_the_task(book):
    # The carbon tracker hears the hardware node directly: under load its footprint can reach the
    # orchestrator before the measurement it answers (the load bench lost such tasks for ever).
    task_id, _ = book.submit(problem())
    encoded, candidates, m_laptop, f_laptop = outputs(task_id, "laptop")
    _, _, m_gpu, f_gpu = outputs(task_id, "gpu")
    book.on_encoded(encoded)
    assert not results(book.on_footprint(f_laptop))       # before the candidates, even
    book.on_candidates(candidates)
    assert not results(book.on_measurement(m_gpu) + book.on_footprint(f_gpu) + book.on_footprint(f_laptop))
    done = results(book.on_measurement(m_laptop))
    assert [r.state for r in done][-1] == msg.TaskState.TASK_DONE
    assert {o.host for o in done[-1].options} == {"laptop", "gpu"}


def test_a_final_footprint_before_the_final_measurement_counts_as_final(book):
    task_id, _ = book.submit(problem())
    encoded, candidates, first, _ = outputs(task_id, "laptop")
    book.on_node_gone("hw_constraints@gpu", now=0.0)
    book.on_encoded(encoded)
    book.on_candidates(candidates)
    first.plan_done = False
    first.measurements.append(msg.JobMeasurement(model="tabular_resnet", device="cpu", host="laptop",
                                                 latency_p50_ms=2.0, energy_method="estimate"))
    last = msg.HardwareMeasurement(task_id=task_id, host="laptop", message_index=1, plan_done=True,
                                   measurements=[first.measurements[0]])
    detail = {name: msg.FootprintDetail(model=name, device="cpu", host="laptop", region="DEU", total_co2_g=1.0)
              for name in ("tabular_mlp", "tabular_resnet")}
    book.on_measurement(first)
    book.on_footprint(msg.CarbonFootprint(task_id=task_id, host="laptop", footprints=list(detail.values())))
    book.on_footprint(msg.CarbonFootprint(task_id=task_id, host="laptop", message_index=1,
                                          footprints=[detail["tabular_mlp"]]))
    done = results(book.on_measurement(last))
    assert done[-1].state == msg.TaskState.TASK_DONE
    assert [o.model for o in done[-1].options] == ["tabular_mlp"]   # the last message's jobs only


def test_a_vanished_host_is_reported_missing_and_the_rest_comes_back(book):
    task_id, _ = book.submit(problem())
    encoded, candidates, m_laptop, f_laptop = outputs(task_id, "laptop")
    book.on_encoded(encoded)
    book.on_candidates(candidates)
    book.on_measurement(m_laptop)
    book.on_footprint(f_laptop)
    book.on_node_gone("hw_constraints@gpu", now=100.0)
    assert not results(book.on_tick(105.0))           # within the grace period: still waiting
    done = results(book.on_tick(111.0))
    assert done[0].state == msg.TaskState.TASK_DONE
    assert "gpu" in done[0].explanation and "did not come back" in done[0].explanation


def test_an_error_status_fails_the_task_naming_the_node(book):
    task_id, _ = book.submit(problem())
    actions = book.on_node_status(status("task_encoder", "task_encoder", "h", msg.NodeState.NODE_ERROR,
                                         task=task_id, message="quality_target 90: give a fraction"), 1.0)
    failed = results(actions)[0]
    assert failed.state == msg.TaskState.TASK_FAILED
    assert failed.failed_node == "task_encoder" and "fraction" in failed.error


def test_a_restarted_node_gets_its_inputs_again_once_it_serves(book):
    task_id, _ = book.submit(problem())
    encoded, candidates, *_ = outputs(task_id, "laptop")
    book.on_encoded(encoded)
    book.on_candidates(candidates)
    book.on_node_gone("hw_constraints@laptop", now=1.0)
    starting = book.on_node_status(status("hw_constraints@laptop", "hw_constraints", "laptop",
                                          msg.NodeState.NODE_STARTING, pid=2, started=2.0), 2.0)
    assert not [a for a in starting if isinstance(a.message, msg.ModelCandidates)]
    ready = book.on_node_status(status("hw_constraints@laptop", "hw_constraints", "laptop", pid=2, started=2.0), 3.0)
    assert [type(a.message) for a in ready] == [msg.EncodedTask, msg.ModelCandidates]


def test_a_stage_that_never_answers_times_out_naming_the_node(book):
    task_id, _ = book.submit(problem())
    failed = results(book.on_tick(10**9))[0]
    assert failed.state == msg.TaskState.TASK_FAILED and failed.failed_node == "task_encoder"
    assert "no answer within 100 s" in failed.error


def test_unfinished_tasks_are_resumed_from_the_store():
    store = TaskStore(":memory:")
    first = TaskBook(store)
    task_id, _ = first.submit(problem())
    second = TaskBook(store)
    [(resumed_id, resumed_problem)] = store.unfinished()
    actions = second.resume(resumed_id, resumed_problem)
    assert resumed_id == task_id
    assert any(isinstance(a.message, msg.UserInput) and a.message.task_id == task_id for a in actions)


# ---------------------------------------------------------------- tracked stages of a user's pipeline


def stage(task_id, stage_name, co2_g, run="RF", started=1.0):
    return msg.StageRecord(task_id=task_id, run=run, stage=stage_name, host="laptop", started_unix_s=started,
                           energy_j=co2_g * 1000, energy_method="estimate", co2_g=co2_g)


def test_stages_of_a_finished_task_update_its_stored_result(book):
    task_id, _ = book.submit(problem())
    encoded, candidates, m_laptop, f_laptop = outputs(task_id, "laptop")
    _, _, m_gpu, f_gpu = outputs(task_id, "gpu")
    book.on_measurement(m_laptop)
    book.on_measurement(m_gpu)
    book.on_encoded(encoded)
    book.on_candidates(candidates)
    book.on_footprint(f_laptop)
    assert results(book.on_footprint(f_gpu))[0].state == msg.TaskState.TASK_DONE

    book.on_stage_record(stage(task_id, "featurize", 0.1))
    (published,) = results(book.on_stage_record(stage(task_id, "train", 0.3)))
    assert [r.stage for r in published.stages] == ["featurize", "train"]
    assert published.stages_summary == "RF: train dominates (75% of 400 mg CO2e)"
    assert published.state == msg.TaskState.TASK_DONE and published.options  # the rest of the result is kept
    stored = book.store.get_result(task_id)
    assert [r.stage for r in stored.stages] == ["featurize", "train"]
    # The same record again (a re-send) replaces its copy; a repeat of the stage later is kept beside it.
    book.on_stage_record(stage(task_id, "train", 0.3))
    (again,) = results(book.on_stage_record(stage(task_id, "train", 0.2, started=9.0)))
    assert [r.stage for r in again.stages] == ["featurize", "train", "train"]


def test_stages_while_the_task_runs_come_with_its_result(book):
    task_id, _ = book.submit(problem())
    assert book.on_stage_record(stage(task_id, "clean", 0.05, run="DT")) == []
    forecast = msg.TrainingForecast(task_id=task_id, run="DT", host="laptop", epochs_done=3, epochs_planned=10,
                                    predicted_co2_g=1.0)
    assert book.on_forecast(forecast) == []
    encoded, candidates, m_laptop, f_laptop = outputs(task_id, "laptop")
    _, _, m_gpu, f_gpu = outputs(task_id, "gpu")
    book.on_encoded(encoded)
    book.on_candidates(candidates)
    for message in (m_laptop, m_gpu):
        book.on_measurement(message)
    book.on_footprint(f_laptop)
    (done,) = results(book.on_footprint(f_gpu))
    assert [r.stage for r in done.stages] == ["clean"] and done.stages_summary.startswith("DT: clean dominates (100%")
    assert [f.epochs_done for f in done.forecasts] == [3]


def test_a_stage_for_an_unknown_task_is_dropped_with_a_warning(book, caplog):
    assert book.on_stage_record(stage(msg.TaskId("nope", 1), "train", 1.0)) == []
    assert "stage record for unknown task nope/1 dropped" in caplog.text
