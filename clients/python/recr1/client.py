"""PolicyClient: one method per call of recr1d's Policy service (proto/recr1/v1/policy.proto)."""

from recr1.transport import Channel, default_address
from recr1.v1 import common_pb2, policy_pb2

SERVICE = "recr1.v1.Policy"


def _token_from(token, token_file):
    if token_file:
        with open(token_file, encoding="utf-8") as f:
            return f.read().strip()
    return token


def as_list(value, argument, element):
    """value as a list, refusing a bare str (or bytes) where a list of them is meant: list("Hello") would
    make five one-letter prompts. The error names the argument."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{argument}: a list of {element}s, not a single {type(value).__name__} "
                        f"(write [{value!r}] for one)")
    try:
        return list(value)
    except TypeError:
        raise TypeError(f"{argument}: a list of {element}s, not {type(value).__name__}") from None


def to_prompt(prompt):
    """str -> text; list of {"role", "content"} -> chat; list of ints -> token ids; Prompt -> itself."""
    if isinstance(prompt, common_pb2.Prompt):
        return prompt
    if isinstance(prompt, str):
        return common_pb2.Prompt(text=prompt)
    items = list(prompt)
    if all(isinstance(t, int) for t in items):
        return common_pb2.Prompt(tokens=common_pb2.TokenIds(ids=items))
    messages = [common_pb2.ChatMessage(role=m["role"], content=m["content"]) for m in items]
    return common_pb2.Prompt(chat=common_pb2.Conversation(messages=messages))


def to_continuation(completion):
    """str -> text; list of ints -> token ids; Continuation -> itself."""
    if isinstance(completion, common_pb2.Continuation):
        return completion
    if isinstance(completion, str):
        return common_pb2.Continuation(text=completion)
    return common_pb2.Continuation(tokens=common_pb2.TokenIds(ids=list(completion)))


def to_conversation(messages):
    if isinstance(messages, common_pb2.Conversation):
        return messages
    return common_pb2.Conversation(
        messages=[common_pb2.ChatMessage(role=m["role"], content=m["content"]) for m in messages])


class PolicyClient:
    """A client of recr1d. Methods return the reply messages of policy.proto and raise a RecR1Error
    subclass (InvalidArgument, NotFound, ...) carrying the status code, message and field on failure.

    Thread-safe: calls from several threads run concurrently, each on its own nng context."""

    def __init__(self, address=None, *, timeout=60.0, token=None, token_file=None):
        self.address = address or default_address()
        self.timeout = timeout
        self._channel = Channel(self.address, _token_from(token, token_file))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._channel.close()

    def call(self, method, request, reply_type, timeout=None):
        """Calls recr1.v1.Policy/<method> with a request message; the building block of every method."""
        return self._channel.call(f"{SERVICE}/{method}", request, reply_type,
                                  self.timeout if timeout is None else timeout)

    # --- Info, Health ------------------------------------------------------------------------------
    def info(self):
        return self.call("Info", policy_pb2.InfoRequest(), policy_pb2.InfoReply)

    def health(self):
        return self.call("Health", policy_pb2.HealthRequest(), policy_pb2.HealthReply)

    # --- Tokenizer ---------------------------------------------------------------------------------
    def tokenize(self, texts, *, add_special_tokens=False, special_tokens_as_text=False):
        """A list of token-id lists, one per text."""
        single = isinstance(texts, str)
        request = policy_pb2.TokenizeRequest(
            texts=[texts] if single else list(texts), add_special_tokens=add_special_tokens,
            special_tokens_as_text=special_tokens_as_text)
        reply = self.call("Tokenize", request, policy_pb2.TokenizeReply)
        return [list(t.ids) for t in reply.tokens]

    def detokenize(self, sequences, *, skip_special_tokens=False):
        """A list of texts, one per token-id list."""
        sequences = as_list(sequences, "detokenize(sequences=)", "token-id list")
        for index, ids in enumerate(sequences):
            if isinstance(ids, int) or isinstance(ids, (str, bytes)):
                raise TypeError(f"detokenize(sequences=)[{index}]: a list of token ids, not {type(ids).__name__} "
                                "(write [[1, 2, 3]] for one sequence)")
        request = policy_pb2.DetokenizeRequest(
            sequences=[common_pb2.TokenIds(ids=list(s)) for s in sequences],
            skip_special_tokens=skip_special_tokens)
        return list(self.call("Detokenize", request, policy_pb2.DetokenizeReply).texts)

    def apply_chat_template(self, conversations, *, add_generation_prompt=True, default_system=True):
        conversations = as_list(conversations, "apply_chat_template(conversations=)", "conversation")
        request = policy_pb2.ApplyChatTemplateRequest(
            conversations=[to_conversation(c) for c in conversations],
            add_generation_prompt=add_generation_prompt, no_default_system=not default_system)
        return self.call("ApplyChatTemplate", request, policy_pb2.ApplyChatTemplateReply)

    # --- Generate, Score ---------------------------------------------------------------------------
    def generate(self, prompts, *, n=1, temperature=1.0, top_k=0, top_p=1.0, seed=None, max_new_tokens=0,
                 stop_token_ids=(), stop_strings=(), ignore_eos=False, store=True, timeout=None):
        """n completions for each prompt (str, chat messages or token ids). ignore_eos: the model's end tokens do
        not end a sample (for benchmarks of a fixed shape)."""
        prompts = as_list(prompts, "generate(prompts=)", "prompt")
        sampling = policy_pb2.SamplingParams(
            temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=max_new_tokens,
            stop_token_ids=as_list(stop_token_ids, "generate(stop_token_ids=)", "token id"),
            stop_strings=as_list(stop_strings, "generate(stop_strings=)", "string"), ignore_eos=ignore_eos)
        if seed is not None:
            sampling.seed.value = seed
        request = policy_pb2.GenerateRequest(
            prompts=[to_prompt(p) for p in prompts], n=n, sampling=sampling, no_store=not store)
        return self.call("Generate", request, policy_pb2.GenerateReply, timeout)

    def score(self, pairs, *, which="policy", timeout=None):
        """Per-token log-probs of each (prompt, completion) pair; which: policy, reference or both."""
        which_enum = {"policy": policy_pb2.SCORE_WITH_POLICY, "reference": policy_pb2.SCORE_WITH_REFERENCE,
                      "both": policy_pb2.SCORE_WITH_BOTH}[which]
        items = []
        for index, pair in enumerate(as_list(pairs, "score(pairs=)", "(prompt, completion) pair")):
            if isinstance(pair, (str, bytes)) or len(pair) != 2:
                raise TypeError(f"score(pairs=)[{index}]: a (prompt, completion) pair, not {pair!r:.60}")
            items.append(policy_pb2.ScoreItem(prompt=to_prompt(pair[0]), completion=to_continuation(pair[1])))
        request = policy_pb2.ScoreRequest(items=items, score_with=which_enum)
        return self.call("Score", request, policy_pb2.ScoreReply, timeout)

    # --- Update ------------------------------------------------------------------------------------
    def update(self, request=None, *, grpo=None, dpo=None, sft=None, accumulate=False, learning_rate=0.0,
               timeout=None):
        """One optimiser step (or one accumulation) on a GrpoBatch, DpoBatch or SftBatch, or on a
        ready UpdateRequest."""
        if request is None:
            request = policy_pb2.UpdateRequest(accumulate=accumulate, learning_rate=learning_rate)
            given = [(name, batch) for name, batch in (("grpo", grpo), ("dpo", dpo), ("sft", sft)) if batch]
            if len(given) != 1:
                raise ValueError("update() needs exactly one of grpo=, dpo=, sft= (or a ready UpdateRequest)")
            getattr(request, given[0][0]).CopyFrom(given[0][1])
        return self.call("Update", request, policy_pb2.UpdateReply, timeout)

    # --- Checkpoints, export -----------------------------------------------------------------------
    def save_checkpoint(self, path=""):
        return self.call("SaveCheckpoint", policy_pb2.SaveCheckpointRequest(path=path),
                         policy_pb2.SaveCheckpointReply)

    def load_checkpoint(self, path, *, as_reference=False):
        """as_reference: the loaded policy also becomes the reference (the KL anchor), e.g. a cold start."""
        return self.call("LoadCheckpoint", policy_pb2.LoadCheckpointRequest(path=path, as_reference=as_reference),
                         policy_pb2.LoadCheckpointReply)

    def export(self, directory, *, format="merged"):
        """format: "merged" (Hugging Face safetensors) or "peft" (adapter files)."""
        fmt = {"merged": policy_pb2.EXPORT_MERGED_SAFETENSORS, "peft": policy_pb2.EXPORT_PEFT_ADAPTER}[format]
        return self.call("Export", policy_pb2.ExportRequest(directory=directory, format=fmt),
                         policy_pb2.ExportReply)

    # --- Jobs --------------------------------------------------------------------------------------
    def start_job(self, *, config_path=None, config_toml=None):
        if (config_path is None) == (config_toml is None):
            raise ValueError("start_job() needs exactly one of config_path=, config_toml=")
        request = policy_pb2.StartJobRequest()
        if config_path is not None:
            request.config_path = config_path
        else:
            request.config_toml = config_toml
        return self.call("StartJob", request, policy_pb2.StartJobReply)

    def job_status(self, job_id):
        return self.call("JobStatus", policy_pb2.JobStatusRequest(job_id=job_id), policy_pb2.JobStatusReply)

    def stop_job(self, job_id):
        return self.call("StopJob", policy_pb2.StopJobRequest(job_id=job_id), policy_pb2.StopJobReply)
