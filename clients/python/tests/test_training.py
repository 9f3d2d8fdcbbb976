"""Update, checkpoints and export through recr1d with the real SmolLM2, and learning on small tasks.

The learning tests print their curves (run pytest with -s to see them) and assert generous bounds."""

import json
import struct

import pytest

import recr1
from recr1.v1 import policy_pb2

from conftest import Daemon

FRUIT = [{"role": "user", "content": "Name a fruit."}]
CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]


def start(tmp_path, name="d", config="seed = 7\nmatmul_backend = \"openblas\"\n", extra=("--allow-dir", "{tmp}")):
    """A recr1d with SmolLM2 (LoRA by default) and its own state directory; fp32 products unless the config
    says otherwise (the learning tests run on the default backend, bf16 where the CPU has AMX)."""
    directory = tmp_path / name
    directory.mkdir()
    (directory / "recr1d.toml").write_text(config)
    address = f"ipc://{directory}/recr1d.sock"
    daemon = Daemon(["--listen", address, "--config", str(directory / "recr1d.toml"), "--state-dir",
                     str(directory / "state"), "--max-new-tokens", "64", "--max-sequence-tokens", "512",
                     *(arg.format(tmp=tmp_path) for arg in extra)],
                    cwd=directory)
    daemon.wait_ready(address, timeout=120)
    return daemon, recr1.PolicyClient(address, timeout=600)


@pytest.fixture
def policy(tmp_path):
    daemon, client = start(tmp_path)
    yield client
    client.close()
    daemon.stop()


def logprobs(client, pairs=((CAPITAL, "The capital of France is Paris."), (FRUIT, "An apple."))):
    reply = client.score(list(pairs), which="both")
    return reply.policy_version, [list(r.policy_logprobs) for r in reply.results], [list(r.reference_logprobs) for r in reply.results]


def test_grpo_update_by_rollout_ids_bumps_the_version(policy):
    info = policy.info()
    assert info.model.training_mode == "lora" and info.model.trainable_parameters > 0
    version, before, reference = logprobs(policy)
    assert version == 0 and before == reference, "before training the policy is the reference"

    generated = policy.generate([FRUIT], n=4, max_new_tokens=8, seed=3)
    assert generated.policy_version == 0
    samples = generated.results[0].completions
    assert all(s.rollout_id for s in samples)
    rewards = [1.0, 0.0, 0.5, 0.0]
    reply = policy.update(grpo=recr1.grpo_batch([list(zip([s.rollout_id for s in samples], rewards))]),
                          learning_rate=1e-3)
    assert reply.applied and reply.policy_version == 1 and reply.step == 1
    m = reply.metrics
    assert m.sequences == 4 and m.tokens > 4 * 8
    assert m.grad_norm > 0 and m.learning_rate == pytest.approx(1e-3)
    assert m.reward_mean == pytest.approx(0.375) and m.entropy > 0
    assert m.kl >= 0 and m.seconds > 0

    version, after, reference_after = logprobs(policy)
    assert version == 1
    assert reference_after == reference, "the reference (adapters off) does not move"
    assert max(abs(a - b) for x, y in zip(after, before) for a, b in zip(x, y)) > 1e-4
    assert policy.generate([FRUIT], n=1, max_new_tokens=2).policy_version == 1

    # The same rollouts again: the ratio is no longer 1, and the KL against the reference is positive.
    again = policy.update(grpo=recr1.grpo_batch([list(zip([s.rollout_id for s in samples], rewards))], beta=0.1))
    assert again.applied and again.policy_version == 2 and again.metrics.kl > 0


def unknown_objective(groups):
    """A GrpoBatch whose objective is a number no enum value has (a client built from a newer proto)."""
    batch = recr1.grpo_batch(groups)
    batch.config.objective = 7
    return batch


def test_gspo_and_cispo_updates_move_the_policy(policy):
    """The two other policy terms through the real socket: each applies an optimiser step that changes the
    policy's log-probs, and reports a clip fraction; a second pass over the same rollouts has ratios != 1."""
    for objective in ("gspo", "cispo"):
        version, before, _ = logprobs(policy)
        samples = policy.generate([FRUIT], n=4, max_new_tokens=8, seed=5).results[0].completions
        group = [list(zip([s.rollout_id for s in samples], [1.0, 0.0, 0.5, 0.0]))]
        reply = policy.update(grpo=recr1.grpo_batch(group, objective=objective, beta=0.0), learning_rate=1e-3)
        assert reply.applied and reply.policy_version == version + 1, objective
        assert reply.metrics.grad_norm > 0 and reply.metrics.clip_fraction == 0, objective  # ratio 1 on the first pass
        # The sampler-trainer check: on fresh rollouts the two sets of numerics agree closely.
        first = reply.metrics.log_ratio_abs_max
        assert 0 <= reply.metrics.log_ratio_abs_mean <= first < 0.05, (objective, reply.metrics)
        _, after, _ = logprobs(policy)
        assert max(abs(a - b) for x, y in zip(after, before) for a, b in zip(x, y)) > 1e-4, objective
        again = policy.update(grpo=recr1.grpo_batch(group, objective=objective, beta=0.0, epsilon_low=1e-6),
                              learning_rate=1e-3)
        assert again.applied and again.metrics.clip_fraction > 0, objective
        assert again.metrics.log_ratio_abs_max > first, objective   # the policy has moved since sampling
    with pytest.raises(ValueError, match="objective"):
        recr1.grpo_batch(group, objective="ppo")


def test_explicit_samples_dpo_and_sft_updates(policy):
    ids = policy.apply_chat_template([FRUIT]).tokens[0].ids
    apple, rock = policy.tokenize(["Apple.", "A rock."])
    batch = recr1.grpo_batch([[({"prompt_tokens": ids, "completion_tokens": apple}, 1.0),
                               ({"prompt_tokens": ids, "completion_tokens": rock, "old_logprobs": [-2.0] * len(rock)}, 0.0)]])
    assert policy.update(grpo=batch).applied
    dpo = policy.update(dpo=recr1.dpo_batch([(FRUIT, "Apple.", "A rock.")], beta=0.1))
    assert dpo.applied and dpo.policy_version == 2
    assert dpo.metrics.margin == pytest.approx(dpo.metrics.chosen_rewards - dpo.metrics.rejected_rewards)
    sft = policy.update(sft=recr1.sft_batch([(FRUIT, "Apple.")]))
    assert sft.applied and sft.policy_version == 3 and sft.metrics.loss > 0

    # Accumulation: two requests, one step.
    first = policy.update(sft=recr1.sft_batch([(FRUIT, "Apple.")]), accumulate=True)
    assert not first.applied and first.policy_version == 3
    second = policy.update(sft=recr1.sft_batch([(FRUIT, "Banana.")]))
    assert second.applied and second.policy_version == 4 and second.step == 4


def test_flat_groups_and_dpo_groups_follow_the_servers_rules(policy):
    """drop_flat_groups leaves a flat group out (counted in groups_flat); every group flat skips the step and
    keeps the weights. DpoBatch.groups: recr1d pairs each group's best with its worst, flat groups unpaired."""
    rollouts = policy.generate([FRUIT, CAPITAL], n=3, max_new_tokens=6, seed=4).results
    fruit, capital = ([c.rollout_id for c in r.completions] for r in rollouts)
    signal = list(zip(fruit, [1.0, 0.0, 0.5]))
    flat = list(zip(capital, [0.5, 0.5, 0.5]))

    version, before, _ = logprobs(policy)
    skipped = policy.update(grpo=recr1.grpo_batch([flat], beta=0.0, drop_flat_groups=True), learning_rate=1e-3)
    assert not skipped.applied and "drop_flat_groups" in skipped.skipped_reason and skipped.metrics.groups_flat == 1
    assert logprobs(policy) == (version, before, before) and skipped.policy_version == version

    dropped = policy.update(grpo=recr1.grpo_batch([signal, flat], beta=0.0, drop_flat_groups=True), learning_rate=1e-3)
    assert dropped.applied and dropped.metrics.groups_flat == 1 and dropped.metrics.sequences == 3
    kept = policy.update(grpo=recr1.grpo_batch([signal, flat], beta=0.0), learning_rate=1e-3)
    assert kept.applied and kept.metrics.groups_flat == 0 and kept.metrics.sequences == 6

    paired = policy.update(dpo=recr1.dpo_batch(groups=[signal, flat], beta=0.1), learning_rate=1e-3)
    assert paired.applied and paired.metrics.pairs == 1 and paired.metrics.groups_flat == 1
    assert paired.metrics.sequences == 2
    unpaired = policy.update(dpo=recr1.dpo_batch(groups=[flat], beta=0.1))
    assert not unpaired.applied and unpaired.skipped_reason.startswith("no pair") and unpaired.metrics.pairs == 0
    with pytest.raises(recr1.NotFound) as caught:
        policy.update(dpo=recr1.dpo_batch(groups=[[(fruit[0], 1.0), ("no-such-rollout", 0.0)]]))
    assert caught.value.field == "dpo.groups[0].samples[1].rollout_id"


def test_bad_updates_name_the_field_and_change_nothing(policy):
    version, before, _ = logprobs(policy)
    rollout = policy.generate([FRUIT], n=2, max_new_tokens=4, seed=1).results[0].completions
    ids = policy.apply_chat_template([FRUIT]).tokens[0].ids
    cases = [
        (recr1.InvalidArgument, "batch", policy_pb2.UpdateRequest()),
        (recr1.InvalidArgument, "grpo.groups", policy_pb2.UpdateRequest(grpo=policy_pb2.GrpoBatch())),
        (recr1.InvalidArgument, "grpo.groups[0].samples",
         policy_pb2.UpdateRequest(grpo=recr1.grpo_batch([[(rollout[0].rollout_id, 1.0)]]))),
        (recr1.NotFound, "grpo.groups[0].samples[1].rollout_id",
         policy_pb2.UpdateRequest(grpo=recr1.grpo_batch([[(rollout[0].rollout_id, 1.0), ("no-such-rollout", 0.0)]]))),
        (recr1.InvalidArgument, "grpo.groups[0].samples[0].reward",
         policy_pb2.UpdateRequest(grpo=recr1.grpo_batch([[(rollout[0].rollout_id, float("nan")), (rollout[1].rollout_id, 0.0)]]))),
        (recr1.InvalidArgument, "grpo.groups[0].samples[1].explicit.old_logprobs",
         policy_pb2.UpdateRequest(grpo=recr1.grpo_batch([[(rollout[0].rollout_id, 1.0),
                                                          ({"prompt_tokens": ids, "completion_tokens": [5, 6], "old_logprobs": [-1.0]}, 0.0)]]))),
        (recr1.InvalidArgument, "grpo.groups[0].samples[1].explicit.completion_tokens.ids[0]",
         policy_pb2.UpdateRequest(grpo=recr1.grpo_batch([[(rollout[0].rollout_id, 1.0),
                                                          ({"prompt_tokens": ids, "completion_tokens": [49152]}, 0.0)]]))),
        (recr1.InvalidArgument, "grpo.config.epsilon_low",
         policy_pb2.UpdateRequest(grpo=recr1.grpo_batch([[(r.rollout_id, 1.0) for r in rollout]], epsilon_low=-1.0))),
        (recr1.InvalidArgument, "grpo.config.objective",
         policy_pb2.UpdateRequest(grpo=unknown_objective([[(r.rollout_id, 1.0) for r in rollout]]))),
        (recr1.InvalidArgument, "dpo.config.beta", policy_pb2.UpdateRequest(dpo=recr1.dpo_batch([(FRUIT, "a", "b")], beta=0.0))),
        (recr1.InvalidArgument, "dpo.pairs[0].rejected", policy_pb2.UpdateRequest(dpo=recr1.dpo_batch([(FRUIT, "a", "")]))),
        (recr1.InvalidArgument, "sft.pairs", policy_pb2.UpdateRequest(sft=policy_pb2.SftBatch())),
        (recr1.InvalidArgument, "sft.pairs[0]", policy_pb2.UpdateRequest(sft=recr1.sft_batch([(FRUIT, "word " * 600)]))),
        (recr1.InvalidArgument, "learning_rate",
         policy_pb2.UpdateRequest(sft=recr1.sft_batch([(FRUIT, "a")]), learning_rate=-1.0)),
    ]
    for error, field, request in cases:
        with pytest.raises(error) as caught:
            policy.update(request)
        assert caught.value.field == field, (field, str(caught.value))
    assert logprobs(policy) == (version, before, before)
    assert policy.health().policy_version == version


def test_non_finite_gradients_skip_the_step_and_keep_the_weights(policy):
    ids = policy.apply_chat_template([FRUIT]).tokens[0].ids
    apple, rock = policy.tokenize(["Apple.", "A rock."])
    before = logprobs(policy)
    # Huge advantages (no scaling) overflow the gradients to infinity.
    batch = recr1.grpo_batch([[({"prompt_tokens": ids, "completion_tokens": apple}, 3e38),
                               ({"prompt_tokens": ids, "completion_tokens": rock}, -3e38)]], scaling="none", beta=0.0)
    reply = policy.update(grpo=batch)
    assert not reply.applied and reply.policy_version == 0 and reply.step == 0
    assert "not finite" in reply.skipped_reason
    assert logprobs(policy) == before
    assert policy.update(sft=recr1.sft_batch([(FRUIT, "Apple.")])).applied, "the trainer still works afterwards"


def train_steps(client, count):
    """SFT and explicit-GRPO steps, deterministic given the policy."""
    ids = client.apply_chat_template([FRUIT]).tokens[0].ids
    apple, rock = client.tokenize(["Apple, of course.", "A rock."])
    for step in range(count):
        if step % 2 == 0:
            client.update(sft=recr1.sft_batch([(FRUIT, "Apple, of course."), (CAPITAL, "Paris.")]), learning_rate=1e-3)
        else:
            client.update(grpo=recr1.grpo_batch([[({"prompt_tokens": ids, "completion_tokens": apple}, 1.0),
                                                  ({"prompt_tokens": ids, "completion_tokens": rock}, 0.0)]]),
                          learning_rate=1e-3)


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_checkpoint_resume_is_bit_identical(tmp_path, mode):
    config = f'seed = 7\ntraining_mode = "{mode}"\nmatmul_backend = "openblas"\n'
    first, a = start(tmp_path, "a", config)
    try:
        train_steps(a, 2)
        saved = a.save_checkpoint("ck")
        assert saved.step == 2 and saved.policy_version == 2 and saved.bytes > 0
        assert saved.path.endswith("/state/ck")
        train_steps(a, 2)
        uninterrupted = logprobs(a)
        sampled = [c.token_ids for c in a.generate([FRUIT], n=3, max_new_tokens=8).results[0].completions]
    finally:
        a.close()
        first.stop()

    second, b = start(tmp_path, "b", config)
    try:
        loaded = b.load_checkpoint(saved.path)
        assert (loaded.step, loaded.policy_version) == (2, 2)
        train_steps(b, 2)
        assert logprobs(b) == uninterrupted, "the resumed run matches bit for bit"
        # Unseeded sampling draws its seeds from the checkpointed stream, so it matches too.
        assert [c.token_ids for c in b.generate([FRUIT], n=3, max_new_tokens=8).results[0].completions] == sampled
    finally:
        b.close()
        second.stop()


def test_a_checkpoint_loaded_as_reference_anchors_the_kl_and_a_later_checkpoint_keeps_it(tmp_path, policy):
    train_steps(policy, 2)   # a cold start, say
    cold = policy.save_checkpoint("cold-start")
    _, trained, base = logprobs(policy)
    assert trained != base, "two steps moved the policy away from the base"
    loaded = policy.load_checkpoint(cold.path)
    assert loaded.reference_is_base and logprobs(policy)[2] == base, "loaded plainly, the reference stays the base"

    loaded = policy.load_checkpoint(cold.path, as_reference=True)
    assert not loaded.reference_is_base and loaded.policy_version == 2
    _, now, reference = logprobs(policy)
    assert now == trained and reference == trained, "the reference is the loaded policy"
    grpo = policy.generate([FRUIT], n=4, max_new_tokens=8, seed=3).results[0].completions
    reply = policy.update(grpo=recr1.grpo_batch([list(zip([s.rollout_id for s in grpo], [1.0, 0.0, 0.5, 0.0]))],
                                                beta=0.1), learning_rate=1e-3)
    assert reply.applied and reply.metrics.kl == pytest.approx(0.0, abs=1e-6), "no KL to the anchor at the anchor"
    _, moved, reference = logprobs(policy)
    assert moved != trained and reference == trained, "the policy moves, the reference stays"

    # A checkpoint carries its anchored reference to a daemon started afresh.
    later = policy.save_checkpoint("later")
    assert (tmp_path / "d" / "state" / "later" / "reference" / "adapter_model.safetensors").exists()
    daemon, other = start(tmp_path, "other")
    try:
        assert not other.load_checkpoint(later.path).reference_is_base
        assert logprobs(other)[1:] == (moved, trained)
    finally:
        other.close()
        daemon.stop()


def test_checkpoint_errors_change_nothing(tmp_path, policy):
    train_steps(policy, 1)
    before = logprobs(policy)
    with pytest.raises(recr1.InvalidArgument) as caught:
        policy.load_checkpoint("")
    assert caught.value.field == "path"
    with pytest.raises(recr1.NotFound):
        policy.load_checkpoint(str(tmp_path / "missing"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "trainer.json").write_text("{not json")
    with pytest.raises(recr1.FailedPrecondition) as caught:
        policy.load_checkpoint(str(broken))
    assert "trainer.json" in str(caught.value)

    # A checkpoint whose adapter file is truncated is refused whole.
    good = policy.save_checkpoint(str(tmp_path / "good"))
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    for name in ("trainer.json", "optimizer.safetensors"):
        (truncated / name).write_bytes((tmp_path / "good" / name).read_bytes())
    data = (tmp_path / "good" / "adapter_model.safetensors").read_bytes()
    (truncated / "adapter_model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(recr1.FailedPrecondition) as caught:
        policy.load_checkpoint(str(truncated))
    assert "truncated" in str(caught.value)
    assert logprobs(policy) == before

    # Saving over an existing checkpoint replaces it; a crash between the renames leaves `.previous`.
    train_steps(policy, 1)
    again = policy.save_checkpoint(str(tmp_path / "good"))
    assert again.step == good.step + 1 and not (tmp_path / "good.previous").exists()
    (tmp_path / "good").rename(tmp_path / "good.previous")
    assert policy.load_checkpoint(str(tmp_path / "good")).step == again.step

    # A full fine-tuning daemon refuses a LoRA checkpoint, naming the settings.
    full, client = start(tmp_path, "full", 'training_mode = "full"\nmatmul_backend = "openblas"\n')
    try:
        with pytest.raises(recr1.FailedPrecondition) as caught:
            client.load_checkpoint(again.path.replace(".previous", ""))
        assert "training_mode" in str(caught.value)
    finally:
        client.close()
        full.stop()


def test_request_paths_stay_inside_the_state_dir_and_allowed_dirs(tmp_path):
    exports, outside = tmp_path / "exports", tmp_path / "outside"
    outside.mkdir()
    daemon, policy = start(tmp_path, "confined", extra=("--allow-dir", str(exports)))
    state = tmp_path / "confined" / "state"
    try:
        train_steps(policy, 1)
        before = logprobs(policy)
        state.mkdir(parents=True, exist_ok=True)
        (state / "out").symlink_to(outside)

        def refused(error, field, call):
            with pytest.raises(error) as caught:
                call()
            assert caught.value.field == field and caught.value.message.startswith(field), caught.value
            return caught.value

        refused(recr1.InvalidArgument, "path", lambda: policy.save_checkpoint("../escaped"))
        refused(recr1.InvalidArgument, "path", lambda: policy.save_checkpoint("a\0b"))
        refused(recr1.InvalidArgument, "path", lambda: policy.save_checkpoint("n" * 300))
        refused(recr1.InvalidArgument, "path", lambda: policy.save_checkpoint("/".join(["d" * 200] * 25)))
        denied = refused(recr1.PermissionDenied, "path", lambda: policy.save_checkpoint(str(outside / "ck")))
        assert "allowed_dirs" in denied.message
        refused(recr1.PermissionDenied, "path", lambda: policy.save_checkpoint("out/ck"))   # through the symlink
        refused(recr1.PermissionDenied, "path", lambda: policy.load_checkpoint("/etc"))
        refused(recr1.PermissionDenied, "directory", lambda: policy.export(str(outside / "model")))
        refused(recr1.InvalidArgument, "directory", lambda: policy.export(str(exports / ".." / "outside")))
        refused(recr1.PermissionDenied, "config_path", lambda: policy.start_job(config_path="/etc/passwd"))
        refused(recr1.PermissionDenied, "config_toml.prompts", lambda: policy.start_job(
            config_toml='name = "j"\nprompts = "/etc/passwd"\nalgorithm = "sft"\nsteps = 1\n'))
        refused(recr1.InvalidArgument, "config_toml.output_dir", lambda: policy.start_job(
            config_toml='name = "j"\nprompts = "p.jsonl"\noutput_dir = "../up"\nalgorithm = "sft"\nsteps = 1\n'))
        refused(recr1.InvalidArgument, "config_toml", lambda: policy.start_job(
            config_toml='name = ".."\nprompts = "p.jsonl"\nalgorithm = "sft"\nsteps = 1\n'))
        assert list(outside.iterdir()) == [] and not (tmp_path / "confined" / "escaped").exists()
        assert logprobs(policy) == before

        # Inside the roots everything works: relative paths land in the state dir; exports in allowed_dirs.
        saved = policy.save_checkpoint("ck")
        assert saved.path == str((state / "ck").resolve())
        assert policy.load_checkpoint("ck").step == saved.step
        assert policy.export(str(exports / "peft"), format="peft").files
        assert logprobs(policy) == before
    finally:
        policy.close()
        daemon.stop()


def safetensors_header(path):
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length])


def test_export_merged_and_peft(tmp_path, policy):
    train_steps(policy, 2)
    _, trained, _ = logprobs(policy)
    merged = policy.export(str(tmp_path / "merged"))
    assert set(merged.files) >= {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"}
    config = json.loads((tmp_path / "merged" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["num_hidden_layers"] == 30
    assert config["tie_word_embeddings"] is True and config["rope_theta"] == 100000

    # The export loads as a model of its own, with the adapters folded in.
    daemon, client = start(tmp_path, "exported", extra=("--model", str(tmp_path / "merged")))
    try:
        info = client.info().model
        assert info.parameters == 134_515_008 and "F32" in info.weights_type
        _, exported, _ = logprobs(client)
        worst = max(abs(a - b) for x, y in zip(exported, trained) for a, b in zip(x, y))
        assert worst < 1e-4, worst
        assert client.tokenize(["Café ☕ 東京 1234 <|im_end|>"]) == policy.tokenize(["Café ☕ 東京 1234 <|im_end|>"])
    finally:
        client.close()
        daemon.stop()

    peft = policy.export(str(tmp_path / "peft"), format="peft")
    assert sorted(peft.files) == ["adapter_config.json", "adapter_model.safetensors"]
    adapter = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert adapter["peft_type"] == "LORA" and adapter["r"] == 16 and adapter["lora_alpha"] == 32
    assert set(adapter["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    header = safetensors_header(tmp_path / "peft" / "adapter_model.safetensors")
    a = header["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]
    b = header["base_model.model.model.layers.29.mlp.down_proj.lora_B.weight"]
    assert a["shape"] == [16, 576] and b["shape"] == [576, 16] and a["dtype"] == "F32"
    assert len([k for k in header if k != "__metadata__"]) == 30 * 7 * 2


# --- Learning on the real model, with recr1d's default matrix products ----------------------------

@pytest.fixture
def default_policy(tmp_path):
    daemon, client = start(tmp_path, config="seed = 7\n")
    backend = client.info().matmul_backend
    print("matrix products:", backend)
    yield client
    client.close()
    daemon.stop()


@pytest.fixture(params=["default", "onednn-bf16"])
def learning_policy(tmp_path, request):
    """The default backend, and bf16 products (oneDNN; mixed precision: fp32 weights, moments and losses),
    where oneDNN has bf16 kernels for this CPU (AVX-512 or AMX; recr1d refuses onednn-bf16 elsewhere)."""
    if request.param == "onednn-bf16":
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        if not all(f" {name}" in flags for name in ("avx512f", "avx512bw", "avx512dq", "avx512vl")):
            pytest.skip("oneDNN 2.6 has no bf16 kernels for this CPU (no AVX-512): recr1d refuses onednn-bf16 here")
    config = "seed = 7\n" + ("" if request.param == "default" else f'matmul_backend = "{request.param}"\n')
    daemon, client = start(tmp_path, config=config)
    backend = client.info().matmul_backend
    print("matrix products:", backend)
    assert request.param in ("default", backend)
    yield client
    client.close()
    daemon.stop()


def test_grpo_raises_the_reward(learning_policy):
    """Reward 1 when the answer to "Name a fruit." contains "apple": rare at first, common after a few steps.
    When the first rewarded samples come is luck of the draw (bf16 on this seed: none in the first two steps,
    then 0.03 -> 1.0 over seven), so the run has 12 steps."""
    default_policy = learning_policy
    curve = []
    for step in range(12):
        generated = default_policy.generate([FRUIT] * 4, n=8, temperature=1.0, max_new_tokens=12)
        groups = [[(c.rollout_id, 1.0 if "apple" in c.text.lower() else 0.0) for c in r.completions]
                  for r in generated.results]
        reply = default_policy.update(grpo=recr1.grpo_batch(groups, beta=0.0), learning_rate=1e-3)
        assert reply.applied
        curve.append(round(reply.metrics.reward_mean, 3))
    print("GRPO mean reward per step:", curve)
    assert sum(curve[-2:]) / 2 >= sum(curve[:2]) / 2 + 0.4, curve
    assert sum(curve[-2:]) / 2 >= 0.6, curve


def test_dpo_raises_the_margin(default_policy):
    pairs = [(FRUIT, "An apple.", "A rock."), (CAPITAL, "Paris.", "London."),
             ([{"role": "user", "content": "Name a color."}], "Blue.", "Seven.")]
    curve = []
    for step in range(6):
        reply = default_policy.update(dpo=recr1.dpo_batch(pairs, beta=0.1), learning_rate=5e-4)
        assert reply.applied
        curve.append(round(reply.metrics.margin, 4))
    print("DPO margin per step:", curve)
    assert curve[0] == pytest.approx(0, abs=1e-3), "the policy starts as the reference"
    assert curve[-1] > 0.5 and all(b > a for a, b in zip(curve, curve[1:])), curve


def test_sft_lowers_the_loss(default_policy):
    pairs = [(FRUIT, "Mango is my favourite fruit."), (CAPITAL, "Paris is the capital of France.")]
    curve = []
    for step in range(6):
        reply = default_policy.update(sft=recr1.sft_batch(pairs), learning_rate=5e-4)
        assert reply.applied
        curve.append(round(reply.metrics.loss, 4))
    print("SFT loss per step:", curve)
    assert curve[-1] < 0.6 * curve[0], curve
