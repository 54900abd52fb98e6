"""Waits in one event loop share a pool of connections to Feldera, and cancelled waits cannot exhaust it.

The server is a plain HTTP/1.1 server on a loopback socket this test owns, so that it can count TCP connections
(accepted, and open at once) and hold each answer long enough for a cancellation to land mid-request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from typing import TYPE_CHECKING

import pytest
from airflow_support import feldera_connection

from airflow_checkpoint_sync.hooks import feldera_api as api
from airflow_checkpoint_sync.hooks.feldera import FelderaHook
from airflow_checkpoint_sync.hooks.transport import MAX_CONNECTIONS, exchange, shared_client

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

BODY = json.dumps({"edition": "Enterprise", "version": "0.369.0"}).encode()


class CountingServer:
    """Answers every request with Feldera's ``/v0/config`` after ``delay`` seconds; counts connections."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.accepted = 0
        self.open = 0
        self.most_open = 0
        self.answered = 0
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(self.delay)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
                    + BODY
                )
                await writer.drain()
                self.answered += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


@contextlib.asynccontextmanager
async def counting_server(monkeypatch: pytest.MonkeyPatch, delay: float) -> AsyncIterator[CountingServer]:
    counting = CountingServer(delay)
    server = await asyncio.start_server(counting.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    counting.url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AIRFLOW_CONN_FELDERA_DEFAULT", feldera_connection(counting.url, timeout=5))
    async with server:
        yield counting
        server.close()


async def wait_like_a_trigger(polls: int, interval: float) -> list[str]:
    """What a deferred wait does: one session for the whole wait, one request per poll, the first poll at a random
    point of the first interval (as the provider's triggers spread theirs)."""
    editions = []
    async with FelderaHook().async_session() as session:
        await asyncio.sleep(random.uniform(0, interval))
        for _ in range(polls):
            editions.append((await session.send(api.get_config()))["edition"])
            await asyncio.sleep(interval)
    return editions


@pytest.mark.asyncio
async def test_a_thousand_waits_share_at_most_twenty_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    async with counting_server(monkeypatch, delay=0.01) as server:
        answers = await asyncio.gather(*(wait_like_a_trigger(polls=3, interval=2.0) for _ in range(1000)))
    assert all(editions == ["Enterprise"] * 3 for editions in answers)
    assert server.answered == 3000  # one request per poll
    assert server.most_open <= MAX_CONNECTIONS
    assert server.accepted <= MAX_CONNECTIONS  # kept alive and reused, not opened per wait


@pytest.mark.asyncio
async def test_waits_cancelled_mid_request_under_load_leave_the_pool_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    # 400 waits on 20 connections, each answer held 0.2 s: most waits are queued for a connection, the case in which
    # httpcore 1.0.9 loses a pool slot per cancelled request (encode/httpcore 1093). Five rounds of cancelling them
    # all mid-request would leak far more than the pool's 20 slots.
    async with counting_server(monkeypatch, delay=0.2) as server, FelderaHook().async_session() as keeper:
        for _ in range(5):
            waits = [asyncio.ensure_future(wait_like_a_trigger(polls=5, interval=0.01)) for _ in range(400)]
            await asyncio.sleep(random.uniform(0.1, 0.4))
            for wait in waits:
                wait.cancel()
            outcomes = await asyncio.gather(*waits, return_exceptions=True)
            assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
        # The pool still serves: every slot came back once its abandoned request ended by itself.
        async with asyncio.timeout(30):
            answers = await asyncio.gather(*(keeper.send(api.get_config()) for _ in range(2 * MAX_CONNECTIONS)))
        assert [answer["edition"] for answer in answers] == ["Enterprise"] * 2 * MAX_CONNECTIONS
        assert server.most_open <= MAX_CONNECTIONS


@pytest.mark.asyncio
async def test_a_wait_cancelled_as_its_answer_arrives_is_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    # The cancellation lands in the very loop iteration the request completes in: Python 3.11's asyncio.wait_for
    # then returns the answer and swallows the cancellation, and a cancelled trigger polls on for ever (what hung
    # the triggers benchmark now and then). The caller must end cancelled, and the request still be answered.
    async with counting_server(monkeypatch, delay=0.05) as server:
        settings = await FelderaHook().async_settings()
        async with shared_client(settings) as shared:
            caller = asyncio.ensure_future(exchange(shared, api.get_config(), timeout=5))
            await asyncio.sleep(0)  # the caller starts its request
            (request,) = shared.requests
            request.add_done_callback(lambda _: caller.cancel())
            with pytest.raises(asyncio.CancelledError):
                await caller
            assert request.done() and request.result()[0] == 200
        assert server.answered == 1
