"""What a trigger undoes when a user kills its deferred task: a plain-value spec in the trigger's kwargs
(``on_kill_cleanup``), and the async steps :meth:`~airflow_checkpoint_sync.triggers.polling.FelderaPollingTrigger.
on_kill` runs for it.

A spec is ``{"action": <a key of ACTIONS>, ...its arguments}``, JSON values only: it crosses the metadata database
with the trigger's other kwargs. :func:`check_cleanup` checks it when the trigger is built, in the task that defers,
so a bad spec fails that task instead of a kill that comes later. The one action today removes a restore drill's
scratch pipeline, and only the very pipeline the drill created.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_checkpoint_sync.exceptions import FelderaApiError, FelderaParameterError, is_not_found
from airflow_checkpoint_sync.rules.drill import REMOVAL, DrillOwner, removal_refusal, removal_step
from airflow_checkpoint_sync.rules.waits import pipeline_wait

if TYPE_CHECKING:
    from airflow_checkpoint_sync.hooks.feldera import FelderaAsyncSession

#: The action that stops (force), clears and deletes a restore drill's scratch pipeline.
REMOVE_SCRATCH_PIPELINE = "remove_scratch_pipeline"
#: Seconds between reads while a removal waits for Feldera to stop the pipeline or clear its storage.
POLL_S = 0.5


class LeftAlone(Exception):
    """The cleanup found something it may not touch, and changed nothing more."""


def remove_scratch_pipeline(pipeline_name: str, owner: DrillOwner, pipeline_id: str | None) -> dict[str, Any]:
    """The spec that removes scratch pipeline ``pipeline_name`` if its description still names ``owner`` and (given
    ``pipeline_id``, the ``id`` Feldera gave it when the drill created it) it is still that very pipeline."""
    return {
        "action": REMOVE_SCRATCH_PIPELINE,
        "pipeline_name": pipeline_name,
        "owner": owner.as_dict(),
        "pipeline_id": pipeline_id,
    }


def check_cleanup(spec: object) -> dict[str, Any] | None:
    """``spec`` as a plain dict once it is one :data:`ACTIONS` can run (None: nothing to undo), or ValueError."""
    if spec is None:
        return None
    if not isinstance(spec, Mapping) or spec.get("action") not in ACTIONS:
        raise FelderaParameterError("on_kill_cleanup", spec, f"None or a spec with an action in {sorted(ACTIONS)}")
    name, owner, pipeline_id = spec.get("pipeline_name"), spec.get("owner"), spec.get("pipeline_id")
    if not isinstance(name, str) or not name or DrillOwner.from_dict(owner) is None:
        raise FelderaParameterError("on_kill_cleanup", spec, "a spec with a pipeline_name and its drill's owner")
    if pipeline_id is not None and not isinstance(pipeline_id, str):
        raise FelderaParameterError("on_kill_cleanup", spec, "a spec whose pipeline_id is the pipeline's id, or None")
    return dict(spec)


async def run_cleanup(session: FelderaAsyncSession, spec: Mapping[str, Any], end_time: float) -> str:
    """Undo what ``spec`` says over ``session`` by ``end_time`` (seconds since the epoch); what was done, as a
    sentence for the log. Raises :class:`LeftAlone` when it may not, and any failure as it is."""
    return await ACTIONS[spec["action"]](session, spec, end_time)


async def _remove_scratch_pipeline(session: FelderaAsyncSession, spec: Mapping[str, Any], end_time: float) -> str:
    # Imported here: a trigger is built in the deferring task too, which never runs this.
    from airflow_checkpoint_sync.hooks import feldera_api as api

    name = str(spec["pipeline_name"])
    owner = DrillOwner.from_dict(spec["owner"])
    pipeline_id = spec.get("pipeline_id")
    assert owner is not None  # check_cleanup saw to it

    async def read() -> dict[str, Any] | None:
        try:
            pipeline: dict[str, Any] = await session.send(api.get_pipeline(name))
        except FelderaApiError as exc:
            if is_not_found(exc):
                return None
            raise
        # Checked on every read, not once: a retry of the task instance may replace the pipeline meanwhile.
        refusal = removal_refusal(pipeline, owner, pipeline_id)
        if refusal:
            raise LeftAlone(f"scratch pipeline '{name}' left alone: {refusal}")
        return pipeline

    gone = f"scratch pipeline '{name}' is gone already"
    pipeline = await read()
    # The drill's own teardown follows the same steps (removal_step).
    for _ in REMOVAL:
        if pipeline is None:
            return gone
        step = removal_step(pipeline)
        if step is None:
            break
        if step.send:
            await session.send(
                api.stop_pipeline(name, force=True) if step.action == "stop" else api.clear_storage(name)
            )
        while (pipeline := await read()) is not None:
            event = pipeline_wait(
                pipeline_name=name,
                pipeline=pipeline,
                error=None,
                targets=[step.target],
                end_time=end_time,
                now=time.time(),
                field=step.field,
            )
            if event is not None:
                if event["status"] != "success":
                    raise RuntimeError(event["message"])
                break
            await asyncio.sleep(max(0.0, min(POLL_S, end_time - time.time())))
    if pipeline is None:
        return gone
    try:
        await session.send(api.delete_pipeline(name))
    except FelderaApiError as exc:
        if not is_not_found(exc):
            raise
    return f"scratch pipeline '{name}' stopped and deleted"


ACTIONS = {REMOVE_SCRATCH_PIPELINE: _remove_scratch_pipeline}
