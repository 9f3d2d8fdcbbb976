"""Builders for Update's batches (policy.proto: GrpoBatch, DpoBatch, SftBatch) from plain Python values."""

from recr1.client import to_continuation, to_prompt
from recr1.v1 import common_pb2, policy_pb2


def _float(value):
    return common_pb2.FloatValue(value=value)


def _choice(argument, value, choices):
    if value not in choices:
        raise ValueError(f"{argument}: {value!r} is not one of {', '.join(map(repr, choices))}")
    return choices[value]


def grpo_batch(groups, *, epsilon_low=None, epsilon_high=None, beta=None, kl="k3", aggregation="token_mean",
               scaling="group", entropy_coefficient=0.0, advantage_epsilon=None, max_completion_tokens=0,
               objective="grpo", drop_flat_groups=False):
    """groups: a list of groups, each a list of (sample, reward) where sample is a rollout id (str) from
    Generate, or a dict with prompt_tokens, completion_tokens and optionally old_logprobs. objective: "grpo"
    (clipped token ratio), "gspo" (clipped sequence ratio) or "cispo" (clipped importance weight, no gradient).
    drop_flat_groups: recr1d leaves out the groups whose rewards are all equal (DAPO's dynamic sampling) and
    counts them in the reply's metrics.groups_flat."""
    config = policy_pb2.GrpoConfig(
        kl_estimator={"k3": policy_pb2.KL_K3, "k1": policy_pb2.KL_K1, "k2": policy_pb2.KL_K2}[kl],
        aggregation={"token_mean": policy_pb2.AGGREGATION_TOKEN_MEAN,
                     "sequence_mean": policy_pb2.AGGREGATION_SEQUENCE_MEAN,
                     "constant": policy_pb2.AGGREGATION_CONSTANT_NORMALIZER}[aggregation],
        advantage_scaling={"group": policy_pb2.SCALE_BY_GROUP_STD, "batch": policy_pb2.SCALE_BY_BATCH_STD,
                           "none": policy_pb2.SCALE_NONE}[scaling],
        entropy_coefficient=entropy_coefficient, max_completion_tokens=max_completion_tokens,
        drop_flat_groups=bool(drop_flat_groups),
        objective=_choice("objective", objective, {"grpo": policy_pb2.OBJECTIVE_CLIPPED_TOKEN,
                                                   "gspo": policy_pb2.OBJECTIVE_CLIPPED_SEQUENCE,
                                                   "cispo": policy_pb2.OBJECTIVE_CISPO}))
    for name, value in (("epsilon_low", epsilon_low), ("epsilon_high", epsilon_high), ("beta", beta),
                        ("advantage_epsilon", advantage_epsilon)):
        if value is not None:
            getattr(config, name).CopyFrom(_float(value))
    batch = policy_pb2.GrpoBatch(config=config)
    _add_groups(batch.groups, groups)
    return batch


def _add_groups(field, groups):
    for group in groups:
        message = field.add()
        for sample, reward in group:
            item = message.samples.add(reward=reward)
            if isinstance(sample, str):
                item.rollout_id = sample
            else:
                item.explicit.prompt_tokens.ids.extend(sample["prompt_tokens"])
                item.explicit.completion_tokens.ids.extend(sample["completion_tokens"])
                item.explicit.old_logprobs.extend(sample.get("old_logprobs", ()))


def dpo_batch(pairs=(), *, groups=(), beta=None, label_smoothing=0.0, loss="sigmoid"):
    """pairs: (prompt, chosen, rejected), each prompt a str, chat messages or token ids, each completion
    a str or token ids. groups: scored samples of one prompt each, as grpo_batch's; recr1d pairs each group's
    best with its worst (the first on ties) and leaves out groups whose rewards are all equal."""
    config = policy_pb2.DpoConfig(label_smoothing=label_smoothing,
                                  loss={"sigmoid": policy_pb2.DPO_SIGMOID, "ipo": policy_pb2.DPO_IPO}[loss])
    if beta is not None:
        config.beta.CopyFrom(_float(beta))
    batch = policy_pb2.DpoBatch(config=config, pairs=[
        policy_pb2.DpoPair(prompt=to_prompt(p), chosen=to_continuation(c), rejected=to_continuation(r))
        for p, c, r in pairs])
    _add_groups(batch.groups, groups)
    return batch


def sft_batch(pairs):
    """pairs: (prompt, completion); the loss covers the completion."""
    return policy_pb2.SftBatch(pairs=[policy_pb2.SftPair(prompt=to_prompt(p), completion=to_continuation(c))
                                      for p, c in pairs])
