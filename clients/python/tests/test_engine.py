"""Tokenize, Detokenize, ApplyChatTemplate, Generate and Score through recr1d with the real SmolLM2."""

import json
import math

import pytest

import recr1
from recr1.v1 import policy_pb2

from conftest import REPO, Daemon

GOLDEN = REPO / "Tests" / "RecR1EngineTests" / "Golden"
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """One recr1d with the default model (SmolLM2 from its package) for the whole module."""
    directory = tmp_path_factory.mktemp("engine")
    address = f"ipc://{directory}/recr1d.sock"
    # OpenBLAS (fp32): the parity checks against the PyTorch golden files need fp32 products.
    daemon = Daemon(["--listen", address, "--matmul-backend", "openblas", "--max-prompts-per-request", "16", "--max-samples-per-prompt", "8",
                     "--max-new-tokens", "64", "--max-sequence-tokens", "400"], cwd=directory)
    try:
        daemon.wait_ready(address, timeout=120)
        with recr1.PolicyClient(address, timeout=300) as c:
            yield c
    finally:
        daemon.stop()


def golden(name):
    return json.loads((GOLDEN / name).read_text())


def test_info_describes_the_model(client):
    model = client.info().model
    assert model.loaded
    assert model.architecture == "LlamaForCausalLM"
    assert model.parameters == 134_515_008
    assert (model.layers, model.hidden_size, model.heads, model.kv_heads) == (30, 576, 9, 3)
    assert model.vocab_size == 49152
    assert "Q4_1" in model.weights_type


def test_tokenize_agrees_with_hugging_face(client):
    cases = golden("tokenizer-smollm2.json")["cases"]
    texts = [case["text"] for case in cases][:16]
    assert client.tokenize(texts) == [case["ids"] for case in cases][:16]
    as_text = client.tokenize(texts, special_tokens_as_text=True)
    assert as_text == [case["ids_special_as_text"] for case in cases][:16]


def test_detokenize_round_trips_and_names_bad_ids(client):
    text = "Café ☕ — 東京 🇫🇷 1234"
    ids = client.tokenize([text])[0]
    assert client.detokenize([ids]) == [text]
    with pytest.raises(recr1.InvalidArgument) as caught:
        client.detokenize([[1, 49152]])
    assert caught.value.field == "sequences[0].ids[1]"


def test_chat_template_agrees_with_hugging_face(client):
    for case in golden("tokenizer-smollm2.json")["chat"]:
        reply = client.apply_chat_template([case["messages"]], add_generation_prompt=case["add_generation_prompt"])
        assert reply.texts[0] == case["text"]
        assert list(reply.tokens[0].ids) == case["ids"]
    no_system = client.apply_chat_template([FRANCE], default_system=False).texts[0]
    assert no_system == "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


def test_greedy_answer(client):
    reply = client.generate([FRANCE], temperature=0, max_new_tokens=32)
    completion = reply.results[0].completions[0]
    assert completion.text == "The capital of France is Paris."
    assert completion.finish_reason == policy_pb2.FINISH_REASON_STOP
    assert completion.token_ids[-1] == 2  # <|im_end|> is kept in the ids, not in the text
    assert len(completion.logprobs) == len(completion.token_ids)


def test_seeded_sampling_is_reproducible_and_samples_differ(client):
    def sample(seed):
        reply = client.generate([FRANCE, "Once upon a time"], n=4, temperature=1.0, top_p=0.95, seed=seed,
                                max_new_tokens=24)
        return [[list(c.token_ids) for c in r.completions] for r in reply.results]

    first, again, other = sample(7), sample(7), sample(8)
    assert first == again
    assert first != other
    assert len({tuple(c) for c in first[1]}) > 1, "four samples of a story opening should not all be equal"


def test_generate_logprobs_equal_score_logprobs(client):
    reply = client.generate(["The best way to learn a language is"], n=2, temperature=0.8, seed=3, max_new_tokens=16)
    prompt_ids = list(reply.results[0].prompt_tokens.ids)
    for completion in reply.results[0].completions:
        assert all(lp <= 0 for lp in completion.logprobs)
        scored = client.score([(prompt_ids, list(completion.token_ids))]).results[0]
        assert list(scored.completion_token_ids) == list(completion.token_ids)
        assert max(abs(a - b) for a, b in zip(scored.policy_logprobs, completion.logprobs)) < 1e-3


def test_stop_strings_and_length(client):
    stopped = client.generate([FRANCE], temperature=0, max_new_tokens=32, stop_strings=["France"]).results[0].completions[0]
    assert stopped.finish_reason == policy_pb2.FINISH_REASON_STOP_STRING
    assert stopped.text.endswith("France")
    short = client.generate(["Count: one, two, three,"], temperature=0, max_new_tokens=5).results[0].completions[0]
    assert short.finish_reason == policy_pb2.FINISH_REASON_LENGTH
    assert len(short.token_ids) == 5


def test_ignore_eos_runs_every_sample_to_max_new_tokens(client):
    messages = [{"role": "user", "content": "Reply with one word: yes or no. Is the sky blue?"}]
    ended = client.generate([messages], temperature=0, max_new_tokens=48).results[0].completions[0]
    assert ended.finish_reason == policy_pb2.FINISH_REASON_STOP, "the short answer should end on its own"
    longer = client.generate([messages], temperature=0, max_new_tokens=48, ignore_eos=True).results[0].completions[0]
    assert longer.finish_reason == policy_pb2.FINISH_REASON_LENGTH
    assert len(longer.token_ids) == 48
    assert list(longer.token_ids[:len(ended.token_ids)]) == list(ended.token_ids)   # the same greedy path, past its end


def test_score_agrees_with_the_reference(client):
    pairs = golden("logprobs-smollm2.json")["pairs"]
    reply = client.score([(p["prompt_ids"], p["completion_ids"]) for p in pairs[:16]], which="both")
    worst = 0.0
    for pair, result in zip(pairs, reply.results):
        assert list(result.reference_logprobs) == list(result.policy_logprobs)
        worst = max(worst, max(abs(a - b) for a, b in zip(result.policy_logprobs, pair["logprobs"])))
    assert worst <= 1e-3


def test_text_prompts_and_completions_are_tokenized(client):
    pair = golden("logprobs-smollm2.json")["pairs"][0]
    by_text = client.score([(pair["prompt"], pair["completion"])]).results[0]
    assert list(by_text.completion_token_ids) == pair["completion_ids"]
    assert max(abs(a - b) for a, b in zip(by_text.policy_logprobs, pair["logprobs"])) <= 1e-3


@pytest.mark.parametrize("kwargs,field", [
    ({"prompts": ["x"] * 17}, "prompts"),
    ({"n": 9}, "n"),
    ({"max_new_tokens": 65}, "sampling.max_new_tokens"),
    ({"temperature": -1.0}, "sampling.temperature"),
    ({"temperature": math.nan}, "sampling.temperature"),
    ({"top_p": 1.5}, "sampling.top_p"),
    ({"prompts": [[]]}, "prompts[0]"),
    ({"prompts": [[5, 60000]]}, "prompts[0].tokens.ids[1]"),
    ({"prompts": ["word " * 390], "max_new_tokens": 20}, "prompts[0]"),
    ({"stop_token_ids": [99999]}, "sampling.stop_token_ids[0]"),
])
def test_generate_refuses_bad_requests_by_name(client, kwargs, field):
    args = {"prompts": ["Hello"], "max_new_tokens": 4, **kwargs}
    prompts = args.pop("prompts")
    with pytest.raises(recr1.InvalidArgument) as caught:
        client.generate(prompts, **args)
    assert caught.value.field == field, caught.value.message
    # And the daemon still serves.
    assert client.generate(["Hi"], temperature=0, max_new_tokens=2).results[0].completions


def test_too_long_names_the_limit(client):
    with pytest.raises(recr1.InvalidArgument) as caught:
        client.generate(["word " * 390], max_new_tokens=20)
    assert "max_sequence_tokens (400)" in caught.value.message
