"""Many clients at once against one recr1d with SmolLM2: replies are correct and carry the policy version
they used; Update is serialised; overload is RESOURCE_EXHAUSTED with a retry hint, never a hang; a deadline
that passes while a request waits for the engine is DEADLINE_EXCEEDED."""

import threading
import time

import pytest

import recr1

from conftest import Daemon

FRUIT = [{"role": "user", "content": "Name a fruit."}]


def start(tmp_path, *extra):
    address = f"ipc://{tmp_path}/recr1d.sock"
    daemon = Daemon(["--listen", address, "--workers", "16", "--seed", "3", *extra], cwd=tmp_path)
    daemon.wait_ready(address, timeout=120)
    return daemon, address


def long_generate(address):
    """A request that holds the engine for a few seconds."""
    with recr1.PolicyClient(address, timeout=600) as c:
        return c.generate([FRUIT], n=8, max_new_tokens=48, seed=1)


def run_all(jobs):
    """Runs every job on its own thread, all started together; returns (result or exception) per job."""
    results = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def worker(i, job):
        barrier.wait()
        try:
            results[i] = job()
        except Exception as error:  # noqa: BLE001 - the test inspects it
            results[i] = error

    threads = [threading.Thread(target=worker, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    return results


def test_sixteen_clients_mixing_generate_score_and_update(tmp_path):
    daemon, address = start(tmp_path)
    try:
        def generate(seed):
            with recr1.PolicyClient(address, timeout=600) as c:
                return c.generate([FRUIT], n=2, max_new_tokens=8, seed=seed)

        def score():
            with recr1.PolicyClient(address, timeout=600) as c:
                return c.score([(FRUIT, "An apple.")])

        def update():
            with recr1.PolicyClient(address, timeout=600) as c:
                return c.update(sft=recr1.sft_batch([(FRUIT, "An apple.")]), learning_rate=1e-4)

        jobs = [lambda s=s: generate(s) for s in range(8)] + [score] * 4 + [update] * 4
        results = run_all(jobs)
        errors = [r for r in results if isinstance(r, Exception)]
        assert not errors, errors
        generated, scored, updated = results[:8], results[8:12], results[12:]
        assert sorted(u.policy_version for u in updated) == [1, 2, 3, 4], "Update is serialised"
        assert sorted(u.step for u in updated) == [1, 2, 3, 4]
        for reply in generated:
            assert 0 <= reply.policy_version <= 4
            completions = reply.results[0].completions
            assert len(completions) == 2 and all(c.token_ids and len(c.logprobs) == len(c.token_ids) for c in completions)
        for reply in scored:
            assert 0 <= reply.policy_version <= 4
            assert len(reply.results[0].policy_logprobs) == len(reply.results[0].completion_token_ids) > 0
        with recr1.PolicyClient(address) as c:
            health = c.health()
            assert health.policy_version == 4 and health.requests_failed == 0
    finally:
        daemon.stop()


def test_overload_and_deadlines(tmp_path):
    daemon, address = start(tmp_path, "--max-queued-requests", "1")
    try:
        results = run_all([lambda: long_generate(address)] * 6)
        refused = [r for r in results if isinstance(r, recr1.ResourceExhausted)]
        served = [r for r in results if not isinstance(r, Exception)]
        assert len(served) >= 2 and refused, results
        assert all(r.retry_after_ms > 0 and r.field == "max_queued_requests" for r in refused)
        assert len(served) + len(refused) == 6

        # A short deadline behind a long request: DEADLINE_EXCEEDED, not a hang.
        def short():
            with recr1.PolicyClient(address, timeout=0.3) as c:
                return c.score([(FRUIT, "An apple.")])

        first, second = run_all([lambda: long_generate(address), lambda: (threading.Event().wait(0.2), short())[1]])
        assert not isinstance(first, Exception), first
        assert isinstance(second, (recr1.DeadlineExceeded,)), second
        with recr1.PolicyClient(address) as c:
            assert c.health().in_flight == 1  # only this Health
    finally:
        daemon.stop()


THINGS = ("fruit", "colour", "city", "river")


def ask(thing):
    return [{"role": "user", "content": f"Name a {thing}."}]


def test_concurrent_generate_requests_share_one_engine_pass(tmp_path):
    daemon, address = start(tmp_path, "--matmul-backend", "openblas")
    try:
        def short(i):
            with recr1.PolicyClient(address, timeout=600) as c:
                return c.generate([ask(THINGS[i])], n=2, max_new_tokens=10 + i, temperature=0.8 + 0.1 * i, seed=100 + i,
                                  stop_strings=["\n"] if i == 3 else ())

        def later(i):
            threading.Event().wait(0.5)  # the long request has the engine by then
            return short(i)

        # One long request holds the engine; four different requests arrive meanwhile and share the next pass.
        results = run_all([lambda: long_generate(address)] + [lambda i=i: later(i) for i in range(4)])
        assert not [r for r in results if isinstance(r, Exception)], results
        assert results[0].batched_requests == 1
        assert [r.batched_requests for r in results[1:]] == [4, 4, 4, 4]
        for i, reply in enumerate(results[1:]):
            completions = reply.results[0].completions
            assert len(completions) == 2
            assert all(len(c.token_ids) <= 10 + i for c in completions), "each request keeps its own max_new_tokens"
            # The same request alone (same seed) gives the same completions: batching changes nothing a client sees.
            alone = short(i)
            assert alone.batched_requests == 1
            assert [list(c.token_ids) for c in alone.results[0].completions] == [list(c.token_ids) for c in completions]
            for a, b in zip(alone.results[0].completions, completions):
                assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-3
                assert a.text == b.text and a.finish_reason == b.finish_reason
    finally:
        daemon.stop()


def test_max_batch_tokens_zero_runs_every_request_alone(tmp_path):
    daemon, address = start(tmp_path, "--max-batch-tokens", "0")
    try:
        def generate(i):
            with recr1.PolicyClient(address, timeout=600) as c:
                return c.generate([ask(THINGS[i])], n=2, max_new_tokens=12, seed=i)

        results = run_all([lambda i=i: generate(i) for i in range(4)])
        assert not [r for r in results if isinstance(r, Exception)], results
        assert [r.batched_requests for r in results] == [1, 1, 1, 1]
    finally:
        daemon.stop()


def test_a_short_request_returns_before_the_long_one_it_shares_a_pass_with(tmp_path):
    daemon, address = start(tmp_path)
    try:
        story = [{"role": "user", "content": "Write a long story about a dragon and a knight."}]
        done = {}

        def timed(name, **kwargs):
            def call():
                threading.Event().wait(0.5)  # the first long request has the engine by then
                with recr1.PolicyClient(address, timeout=600) as c:
                    reply = c.generate([story], seed=7, **kwargs)
                done[name] = time.monotonic()
                return reply

            return call

        results = run_all([lambda: long_generate(address), timed("long", n=8, max_new_tokens=48),
                           timed("short", n=1, max_new_tokens=2)])
        assert not [r for r in results if isinstance(r, Exception)], results
        long_reply, short_reply = results[1], results[2]
        assert long_reply.batched_requests == short_reply.batched_requests == 2
        assert len(short_reply.results[0].completions[0].token_ids) <= 2
        assert max(len(c.token_ids) for c in long_reply.results[0].completions) > 2
        assert done["short"] < done["long"], "the short request's reply does not wait for the rest of its pass"
    finally:
        daemon.stop()
