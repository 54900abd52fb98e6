"""The lazily built FelderaHook that operators and sensors share (the hook, and httpx, load at run time only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_checkpoint_sync.hooks.feldera import FelderaHook


class FelderaHookMixin:
    """Gives a task a ``hook`` for its ``feldera_conn_id``, built on first use and closed by :meth:`close_hook`."""

    feldera_conn_id: str
    pipeline_name: str
    _hook: FelderaHook | None = None

    @property
    def hook(self) -> FelderaHook:
        if self._hook is None:
            from airflow_checkpoint_sync.hooks.feldera import FelderaHook

            self._hook = FelderaHook(self.feldera_conn_id)
        return self._hook

    def publish_pipeline_link(self, context: Context) -> None:
        """Push the pipeline's console URL for the "Feldera pipeline" extra link; a bad connection fails the task."""
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_checkpoint_sync.links import PIPELINE_URL_KEY

        try:
            url = self.hook.pipeline_url(self.pipeline_name)
        except Exception as exc:
            raise AirflowFailException(str(exc)) from exc
        context["ti"].xcom_push(key=PIPELINE_URL_KEY, value=url)

    def close_hook(self) -> None:
        if self._hook is not None:
            self._hook.close()
            self._hook = None
