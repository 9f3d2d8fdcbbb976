"""The client package as a reward-plugin author or a script writer meets it: two dependencies, arguments
checked by name, Ctrl-C that interrupts a waiting call, plugins that say where they listen."""

import pathlib
import signal
import subprocess
import sys
import textwrap
import time
import tomllib

import pynng
import pytest

import recr1
from recr1.recipes import daemon

PACKAGE = pathlib.Path(__file__).resolve().parents[1]

# Run first in a child process: the optional packages are made unimportable, as on a machine with only
# `pip install recr1` (sys.modules[name] = None makes `import name` fail).
WITHOUT_EXTRAS = "import sys\nfor name in ('numpy', 'bm25s', 'matplotlib'):\n    sys.modules[name] = None\n"


def run_python(code, timeout=60):
    return subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, cwd=PACKAGE)


def test_the_package_needs_only_pynng_and_protobuf():
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    names = sorted(d.split(">")[0].split("<")[0].split("=")[0] for d in project["dependencies"])
    assert names == ["protobuf", "pynng"]
    extra = sorted(d.split(">")[0].split("<")[0] for d in project["optional-dependencies"]["recipes"])
    assert extra == ["bm25s", "matplotlib", "numpy"]


def test_client_plugins_and_reczero_work_without_the_extras():
    run = run_python("""
        import recr1
        from recr1 import PolicyClient, RewardClient, RewardItem, serve_reward
        from recr1.rewards import reczero
        item = RewardItem(completion="<analyze user>u</analyze user><analyze item>i</analyze item>"
                                     "<match>m</match><rate>4</rate>", metadata={"rating": 4})
        print(reczero.RecZeroReward()([item])[0][0])
    """)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "2.0"


def test_recipes_and_bm25_without_the_extras_say_what_to_install():
    run = run_python("""
        import sys, recr1.cli
        code = recr1.cli.main(["run", "recone", "--out", "nowhere"])
        try:
            import recr1.rewards.bm25
        except ImportError as exc:
            print("bm25:", exc)
        sys.exit(code)
    """)
    assert run.returncode == 2, run.stderr
    assert "recr1 run: needs numpy, bm25s, matplotlib" in run.stderr and "recr1[recipes]" in run.stderr
    assert "bm25: the BM25 rewards: needs numpy, bm25s" in run.stdout


@pytest.fixture
def silent_server(tmp_path):
    """A real REP socket that takes requests and never answers."""
    address = f"ipc://{tmp_path}/silent.sock"
    sock = pynng.Rep0(listen=address)
    yield address, sock
    sock.close()


@pytest.mark.parametrize("call, argument", [
    (lambda c: c.generate("Hello"), "generate(prompts=)"),
    (lambda c: c.generate(["Hello"], stop_strings="</rate>"), "generate(stop_strings=)"),
    (lambda c: c.generate(["Hello"], stop_token_ids=7), "generate(stop_token_ids=)"),
    (lambda c: c.score([("a prompt", "a completion", "extra")]), "score(pairs=)[0]"),
    (lambda c: c.score("a prompt"), "score(pairs=)"),
    (lambda c: c.detokenize([1, 2, 3]), "detokenize(sequences=)[0]"),
])
def test_bare_strings_and_bad_shapes_are_refused_by_name(silent_server, call, argument):
    address, sock = silent_server
    sock.recv_timeout = 200
    with recr1.PolicyClient(address, timeout=5) as client:
        with pytest.raises(TypeError) as error:
            call(client)
    assert str(error.value).startswith(argument)
    with pytest.raises(pynng.Timeout):   # nothing was sent
        sock.recv()


def test_ctrl_c_interrupts_a_call_that_waits_for_ever(silent_server):
    address, _ = silent_server
    # A job a shell starts in the background (nohup ... &, as CI runners may) inherits SIGINT ignored, and
    # Python then never raises KeyboardInterrupt; the child takes Python's own handler, as at a terminal.
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import signal
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import recr1
        client = recr1.PolicyClient({address!r}, timeout=None)
        print("calling", flush=True)
        try:
            client.info()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert child.stdout.readline().strip() == "calling"
        time.sleep(0.5)   # into the wait for the reply
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=30)   # without the fix the call never returns
    finally:
        child.kill()
    assert "interrupted" in out
    assert child.returncode == 0


def test_serve_reward_says_where_it_listens(tmp_path):
    address = f"ipc://{tmp_path}/reward.sock"
    child = subprocess.Popen([sys.executable, "-c", WITHOUT_EXTRAS + textwrap.dedent(f"""
        from recr1 import serve_reward
        serve_reward(lambda items: [0.0 for _ in items], {address!r})
    """)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stderr.readline()
        assert line.strip() == f"reward plugin: listening on {address}"
        with recr1.RewardClient(address, timeout=10) as reward:
            assert reward([recr1.RewardItem(completion="x")]) == [(0.0, {})]
        child.send_signal(signal.SIGTERM)
        assert child.wait(15) == 0
    finally:
        child.kill()


def test_recr1d_is_found_in_the_source_tree_without_fixed_depths():
    tree = daemon.source_tree()
    assert tree == PACKAGE.parents[1]
    assert (tree / "Package.swift").is_file()
