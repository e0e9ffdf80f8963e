"""Futures of fits on a real local cluster: concurrent.futures ones, and Dask ones other tasks use.

One executor and one tiny real fit (methyl formate, debug workflow, GFN2-xTB) serve every test.
"""

import concurrent.futures

import pytest

from bespoke_dask import BespokeDaskExecutor, BespokeWorkflowFactory
from bespoke_dask.schema import BespokeExecutorOutput

pytestmark = pytest.mark.slow

METHYL_FORMATE = "COC=O"


def n_torsions(output: BespokeExecutorOutput) -> int:
    """What a user's Dask task might do with a fit: here, count its bespoke torsions."""
    return len(output.results.parameters)


@pytest.fixture(scope="module")
def executor(tmp_path_factory):
    with BespokeDaskExecutor(directory=tmp_path_factory.mktemp("executor")) as executor:
        yield executor


@pytest.fixture(scope="module")
def fit(executor):
    """Before the fit starts: three Dask futures of it (one per worker, at least), then its future."""
    workflow = BespokeWorkflowFactory.from_name("debug").optimization_schema_from_smiles(METHYL_FORMATE)
    future = executor.submit(workflow, return_future=True)
    workflow_id = future.workflow_id
    dask_futures = [executor.dask_future(workflow_id) for _ in range(3)]
    return workflow, workflow_id, future, dask_futures


def test_a_submitted_workflow_gives_a_concurrent_future_of_its_output(executor, fit):
    workflow, workflow_id, future, _ = fit
    assert isinstance(future, concurrent.futures.Future)
    done, not_done = concurrent.futures.wait([future], timeout=600)
    assert done == {future} and not not_done
    output = future.result()
    assert output.id == workflow_id and output.status == "success", output.error
    assert output.results.final.rmse <= output.results.initial.rmse
    # The id API is unchanged: the same output by id.
    assert executor.retrieve(workflow_id).results == output.results


def test_dask_futures_feed_the_users_own_tasks_without_holding_a_pool(executor, fit):
    _, workflow_id, future, dask_futures = fit
    # They waited on the pools' workers while the fit ran there: they held no resource or thread.
    future.result(timeout=600)
    counted = executor.client.submit(n_torsions, dask_futures[0])
    assert counted.result(timeout=60) == n_torsions(future.result()) >= 1
    assert all(f.result(timeout=60).status == "success" for f in dask_futures)
    restrictions = executor.client.run_on_scheduler(
        lambda dask_scheduler: [dask_scheduler.tasks[f.key].resource_restrictions for f in dask_futures]
    )
    assert not any(restrictions)


def test_futures_of_finished_workflows_and_map(executor, fit):
    workflow, workflow_id, future, _ = fit
    future.result(timeout=600)
    again = executor.future(workflow_id)
    assert next(concurrent.futures.as_completed([again], timeout=30)).result().status == "success"
    assert executor.dask_future(workflow_id).result(timeout=60).id == workflow_id
    # An identical workflow keeps its id: map yields its finished output at once.
    (mapped,) = executor.map([workflow], timeout=60)
    assert mapped.id == workflow_id
    with pytest.raises(KeyError):
        executor.future("999")
