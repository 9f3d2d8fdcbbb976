from recr1.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

AGGREGATION_CONSTANT_NORMALIZER: LossAggregation
AGGREGATION_SEQUENCE_MEAN: LossAggregation
AGGREGATION_TOKEN_MEAN: LossAggregation
DESCRIPTOR: _descriptor.FileDescriptor
DPO_IPO: DpoLoss
DPO_SIGMOID: DpoLoss
EXPORT_MERGED_SAFETENSORS: ExportFormat
EXPORT_PEFT_ADAPTER: ExportFormat
FINISH_REASON_LENGTH: FinishReason
FINISH_REASON_STOP: FinishReason
FINISH_REASON_STOP_STRING: FinishReason
FINISH_REASON_UNSPECIFIED: FinishReason
JOB_FAILED: JobState
JOB_PENDING: JobState
JOB_RUNNING: JobState
JOB_STATE_UNSPECIFIED: JobState
JOB_STOPPED: JobState
JOB_SUCCEEDED: JobState
KL_K1: KlEstimator
KL_K2: KlEstimator
KL_K3: KlEstimator
OBJECTIVE_CISPO: PolicyObjective
OBJECTIVE_CLIPPED_SEQUENCE: PolicyObjective
OBJECTIVE_CLIPPED_TOKEN: PolicyObjective
SCALE_BY_BATCH_STD: AdvantageScaling
SCALE_BY_GROUP_STD: AdvantageScaling
SCALE_NONE: AdvantageScaling
SCORE_WITH_BOTH: ScoreWith
SCORE_WITH_POLICY: ScoreWith
SCORE_WITH_REFERENCE: ScoreWith

class ApplyChatTemplateReply(_message.Message):
    __slots__ = ["texts", "tokens"]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    tokens: _containers.RepeatedCompositeFieldContainer[_common_pb2.TokenIds]
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., tokens: _Optional[_Iterable[_Union[_common_pb2.TokenIds, _Mapping]]] = ...) -> None: ...

class ApplyChatTemplateRequest(_message.Message):
    __slots__ = ["add_generation_prompt", "conversations", "no_default_system"]
    ADD_GENERATION_PROMPT_FIELD_NUMBER: _ClassVar[int]
    CONVERSATIONS_FIELD_NUMBER: _ClassVar[int]
    NO_DEFAULT_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    add_generation_prompt: bool
    conversations: _containers.RepeatedCompositeFieldContainer[_common_pb2.Conversation]
    no_default_system: bool
    def __init__(self, conversations: _Optional[_Iterable[_Union[_common_pb2.Conversation, _Mapping]]] = ..., add_generation_prompt: bool = ..., no_default_system: bool = ...) -> None: ...

class Completion(_message.Message):
    __slots__ = ["finish_reason", "logprobs", "rollout_id", "text", "token_ids"]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    finish_reason: FinishReason
    logprobs: _containers.RepeatedScalarFieldContainer[float]
    rollout_id: str
    text: str
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, rollout_id: _Optional[str] = ..., token_ids: _Optional[_Iterable[int]] = ..., text: _Optional[str] = ..., logprobs: _Optional[_Iterable[float]] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ...) -> None: ...

class DetokenizeReply(_message.Message):
    __slots__ = ["texts"]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, texts: _Optional[_Iterable[str]] = ...) -> None: ...

class DetokenizeRequest(_message.Message):
    __slots__ = ["sequences", "skip_special_tokens"]
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    SKIP_SPECIAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    sequences: _containers.RepeatedCompositeFieldContainer[_common_pb2.TokenIds]
    skip_special_tokens: bool
    def __init__(self, sequences: _Optional[_Iterable[_Union[_common_pb2.TokenIds, _Mapping]]] = ..., skip_special_tokens: bool = ...) -> None: ...

class DpoBatch(_message.Message):
    __slots__ = ["config", "groups", "pairs"]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    config: DpoConfig
    groups: _containers.RepeatedCompositeFieldContainer[GrpoGroup]
    pairs: _containers.RepeatedCompositeFieldContainer[DpoPair]
    def __init__(self, pairs: _Optional[_Iterable[_Union[DpoPair, _Mapping]]] = ..., config: _Optional[_Union[DpoConfig, _Mapping]] = ..., groups: _Optional[_Iterable[_Union[GrpoGroup, _Mapping]]] = ...) -> None: ...

class DpoConfig(_message.Message):
    __slots__ = ["beta", "label_smoothing", "loss"]
    BETA_FIELD_NUMBER: _ClassVar[int]
    LABEL_SMOOTHING_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    beta: _common_pb2.FloatValue
    label_smoothing: float
    loss: DpoLoss
    def __init__(self, beta: _Optional[_Union[_common_pb2.FloatValue, _Mapping]] = ..., label_smoothing: _Optional[float] = ..., loss: _Optional[_Union[DpoLoss, str]] = ...) -> None: ...

class DpoPair(_message.Message):
    __slots__ = ["chosen", "prompt", "rejected"]
    CHOSEN_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    chosen: _common_pb2.Continuation
    prompt: _common_pb2.Prompt
    rejected: _common_pb2.Continuation
    def __init__(self, prompt: _Optional[_Union[_common_pb2.Prompt, _Mapping]] = ..., chosen: _Optional[_Union[_common_pb2.Continuation, _Mapping]] = ..., rejected: _Optional[_Union[_common_pb2.Continuation, _Mapping]] = ...) -> None: ...

class ExplicitSample(_message.Message):
    __slots__ = ["completion_tokens", "old_logprobs", "prompt_tokens"]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OLD_LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    completion_tokens: _common_pb2.TokenIds
    old_logprobs: _containers.RepeatedScalarFieldContainer[float]
    prompt_tokens: _common_pb2.TokenIds
    def __init__(self, prompt_tokens: _Optional[_Union[_common_pb2.TokenIds, _Mapping]] = ..., completion_tokens: _Optional[_Union[_common_pb2.TokenIds, _Mapping]] = ..., old_logprobs: _Optional[_Iterable[float]] = ...) -> None: ...

class ExportReply(_message.Message):
    __slots__ = ["directory", "files"]
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    directory: str
    files: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, directory: _Optional[str] = ..., files: _Optional[_Iterable[str]] = ...) -> None: ...

class ExportRequest(_message.Message):
    __slots__ = ["directory", "format"]
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    directory: str
    format: ExportFormat
    def __init__(self, directory: _Optional[str] = ..., format: _Optional[_Union[ExportFormat, str]] = ...) -> None: ...

class GenerateReply(_message.Message):
    __slots__ = ["batched_requests", "policy_version", "results"]
    BATCHED_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    batched_requests: int
    policy_version: int
    results: _containers.RepeatedCompositeFieldContainer[PromptCompletions]
    def __init__(self, results: _Optional[_Iterable[_Union[PromptCompletions, _Mapping]]] = ..., policy_version: _Optional[int] = ..., batched_requests: _Optional[int] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ["n", "no_store", "prompts", "sampling"]
    NO_STORE_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    n: int
    no_store: bool
    prompts: _containers.RepeatedCompositeFieldContainer[_common_pb2.Prompt]
    sampling: SamplingParams
    def __init__(self, prompts: _Optional[_Iterable[_Union[_common_pb2.Prompt, _Mapping]]] = ..., n: _Optional[int] = ..., sampling: _Optional[_Union[SamplingParams, _Mapping]] = ..., no_store: bool = ...) -> None: ...

class GrpoBatch(_message.Message):
    __slots__ = ["config", "groups"]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    config: GrpoConfig
    groups: _containers.RepeatedCompositeFieldContainer[GrpoGroup]
    def __init__(self, groups: _Optional[_Iterable[_Union[GrpoGroup, _Mapping]]] = ..., config: _Optional[_Union[GrpoConfig, _Mapping]] = ...) -> None: ...

class GrpoConfig(_message.Message):
    __slots__ = ["advantage_epsilon", "advantage_scaling", "aggregation", "beta", "drop_flat_groups", "entropy_coefficient", "epsilon_high", "epsilon_low", "kl_estimator", "max_completion_tokens", "objective"]
    ADVANTAGE_EPSILON_FIELD_NUMBER: _ClassVar[int]
    ADVANTAGE_SCALING_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    BETA_FIELD_NUMBER: _ClassVar[int]
    DROP_FLAT_GROUPS_FIELD_NUMBER: _ClassVar[int]
    ENTROPY_COEFFICIENT_FIELD_NUMBER: _ClassVar[int]
    EPSILON_HIGH_FIELD_NUMBER: _ClassVar[int]
    EPSILON_LOW_FIELD_NUMBER: _ClassVar[int]
    KL_ESTIMATOR_FIELD_NUMBER: _ClassVar[int]
    MAX_COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    advantage_epsilon: _common_pb2.FloatValue
    advantage_scaling: AdvantageScaling
    aggregation: LossAggregation
    beta: _common_pb2.FloatValue
    drop_flat_groups: bool
    entropy_coefficient: float
    epsilon_high: _common_pb2.FloatValue
    epsilon_low: _common_pb2.FloatValue
    kl_estimator: KlEstimator
    max_completion_tokens: int
    objective: PolicyObjective
    def __init__(self, epsilon_low: _Optional[_Union[_common_pb2.FloatValue, _Mapping]] = ..., epsilon_high: _Optional[_Union[_common_pb2.FloatValue, _Mapping]] = ..., beta: _Optional[_Union[_common_pb2.FloatValue, _Mapping]] = ..., kl_estimator: _Optional[_Union[KlEstimator, str]] = ..., aggregation: _Optional[_Union[LossAggregation, str]] = ..., advantage_scaling: _Optional[_Union[AdvantageScaling, str]] = ..., entropy_coefficient: _Optional[float] = ..., advantage_epsilon: _Optional[_Union[_common_pb2.FloatValue, _Mapping]] = ..., max_completion_tokens: _Optional[int] = ..., objective: _Optional[_Union[PolicyObjective, str]] = ..., drop_flat_groups: bool = ...) -> None: ...

class GrpoGroup(_message.Message):
    __slots__ = ["samples"]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    samples: _containers.RepeatedCompositeFieldContainer[GrpoSample]
    def __init__(self, samples: _Optional[_Iterable[_Union[GrpoSample, _Mapping]]] = ...) -> None: ...

class GrpoSample(_message.Message):
    __slots__ = ["explicit", "reward", "rollout_id"]
    EXPLICIT_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    explicit: ExplicitSample
    reward: float
    rollout_id: str
    def __init__(self, rollout_id: _Optional[str] = ..., explicit: _Optional[_Union[ExplicitSample, _Mapping]] = ..., reward: _Optional[float] = ...) -> None: ...

class HealthReply(_message.Message):
    __slots__ = ["in_flight", "policy_version", "requests_failed", "requests_served", "running_job", "status", "uptime_seconds"]
    class ServingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    NOT_SERVING: HealthReply.ServingStatus
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FAILED_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_SERVED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_JOB_FIELD_NUMBER: _ClassVar[int]
    SERVING: HealthReply.ServingStatus
    SERVING_STATUS_UNSPECIFIED: HealthReply.ServingStatus
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STOPPING: HealthReply.ServingStatus
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    in_flight: int
    policy_version: int
    requests_failed: int
    requests_served: int
    running_job: str
    status: HealthReply.ServingStatus
    uptime_seconds: float
    def __init__(self, status: _Optional[_Union[HealthReply.ServingStatus, str]] = ..., uptime_seconds: _Optional[float] = ..., policy_version: _Optional[int] = ..., in_flight: _Optional[int] = ..., requests_served: _Optional[int] = ..., requests_failed: _Optional[int] = ..., running_job: _Optional[str] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class InfoReply(_message.Message):
    __slots__ = ["auth_required", "blas_core", "blas_threads", "cpu_features", "limits", "listen", "matmul_backend", "model", "pid", "policy_version", "server_version", "workers"]
    AUTH_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    BLAS_CORE_FIELD_NUMBER: _ClassVar[int]
    BLAS_THREADS_FIELD_NUMBER: _ClassVar[int]
    CPU_FEATURES_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    LISTEN_FIELD_NUMBER: _ClassVar[int]
    MATMUL_BACKEND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    auth_required: bool
    blas_core: str
    blas_threads: int
    cpu_features: str
    limits: Limits
    listen: _containers.RepeatedScalarFieldContainer[str]
    matmul_backend: str
    model: ModelInfo
    pid: int
    policy_version: int
    server_version: str
    workers: int
    def __init__(self, server_version: _Optional[str] = ..., model: _Optional[_Union[ModelInfo, _Mapping]] = ..., policy_version: _Optional[int] = ..., blas_core: _Optional[str] = ..., blas_threads: _Optional[int] = ..., matmul_backend: _Optional[str] = ..., cpu_features: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., listen: _Optional[_Iterable[str]] = ..., workers: _Optional[int] = ..., auth_required: bool = ..., pid: _Optional[int] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class JobStatusReply(_message.Message):
    __slots__ = ["checkpoint_path", "error", "job_id", "last_metrics", "metrics_path", "state", "step", "total_steps"]
    class LastMetricsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    CHECKPOINT_PATH_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_METRICS_FIELD_NUMBER: _ClassVar[int]
    METRICS_PATH_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    checkpoint_path: str
    error: str
    job_id: str
    last_metrics: _containers.ScalarMap[str, float]
    metrics_path: str
    state: JobState
    step: int
    total_steps: int
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., last_metrics: _Optional[_Mapping[str, float]] = ..., error: _Optional[str] = ..., metrics_path: _Optional[str] = ..., checkpoint_path: _Optional[str] = ...) -> None: ...

class JobStatusRequest(_message.Message):
    __slots__ = ["job_id"]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ["max_items_per_update", "max_message_bytes", "max_new_tokens", "max_prompts_per_request", "max_samples_per_prompt", "max_sequence_tokens"]
    MAX_ITEMS_PER_UPDATE_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_PROMPTS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    MAX_SAMPLES_PER_PROMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQUENCE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    max_items_per_update: int
    max_message_bytes: int
    max_new_tokens: int
    max_prompts_per_request: int
    max_samples_per_prompt: int
    max_sequence_tokens: int
    def __init__(self, max_message_bytes: _Optional[int] = ..., max_prompts_per_request: _Optional[int] = ..., max_samples_per_prompt: _Optional[int] = ..., max_new_tokens: _Optional[int] = ..., max_sequence_tokens: _Optional[int] = ..., max_items_per_update: _Optional[int] = ...) -> None: ...

class LoadCheckpointReply(_message.Message):
    __slots__ = ["path", "policy_version", "reference_is_base", "step"]
    PATH_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_IS_BASE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    path: str
    policy_version: int
    reference_is_base: bool
    step: int
    def __init__(self, path: _Optional[str] = ..., step: _Optional[int] = ..., policy_version: _Optional[int] = ..., reference_is_base: bool = ...) -> None: ...

class LoadCheckpointRequest(_message.Message):
    __slots__ = ["as_reference", "path"]
    AS_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    as_reference: bool
    path: str
    def __init__(self, path: _Optional[str] = ..., as_reference: bool = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ["architecture", "compute_type", "context_length", "heads", "hidden_size", "kv_heads", "layers", "loaded", "name", "parameters", "source", "trainable_parameters", "training_mode", "vocab_size", "weights_type"]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    HEADS_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_SIZE_FIELD_NUMBER: _ClassVar[int]
    KV_HEADS_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TRAINABLE_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_MODE_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_TYPE_FIELD_NUMBER: _ClassVar[int]
    architecture: str
    compute_type: str
    context_length: int
    heads: int
    hidden_size: int
    kv_heads: int
    layers: int
    loaded: bool
    name: str
    parameters: int
    source: str
    trainable_parameters: int
    training_mode: str
    vocab_size: int
    weights_type: str
    def __init__(self, loaded: bool = ..., name: _Optional[str] = ..., source: _Optional[str] = ..., architecture: _Optional[str] = ..., parameters: _Optional[int] = ..., trainable_parameters: _Optional[int] = ..., layers: _Optional[int] = ..., hidden_size: _Optional[int] = ..., heads: _Optional[int] = ..., kv_heads: _Optional[int] = ..., vocab_size: _Optional[int] = ..., context_length: _Optional[int] = ..., compute_type: _Optional[str] = ..., weights_type: _Optional[str] = ..., training_mode: _Optional[str] = ...) -> None: ...

class PromptCompletions(_message.Message):
    __slots__ = ["completions", "prompt_tokens"]
    COMPLETIONS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    completions: _containers.RepeatedCompositeFieldContainer[Completion]
    prompt_tokens: _common_pb2.TokenIds
    def __init__(self, prompt_tokens: _Optional[_Union[_common_pb2.TokenIds, _Mapping]] = ..., completions: _Optional[_Iterable[_Union[Completion, _Mapping]]] = ...) -> None: ...

class SamplingParams(_message.Message):
    __slots__ = ["ignore_eos", "max_new_tokens", "seed", "stop_strings", "stop_token_ids", "temperature", "top_k", "top_p"]
    IGNORE_EOS_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STOP_STRINGS_FIELD_NUMBER: _ClassVar[int]
    STOP_TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    ignore_eos: bool
    max_new_tokens: int
    seed: _common_pb2.UInt64Value
    stop_strings: _containers.RepeatedScalarFieldContainer[str]
    stop_token_ids: _containers.RepeatedScalarFieldContainer[int]
    temperature: float
    top_k: int
    top_p: float
    def __init__(self, temperature: _Optional[float] = ..., top_k: _Optional[int] = ..., top_p: _Optional[float] = ..., seed: _Optional[_Union[_common_pb2.UInt64Value, _Mapping]] = ..., max_new_tokens: _Optional[int] = ..., stop_token_ids: _Optional[_Iterable[int]] = ..., stop_strings: _Optional[_Iterable[str]] = ..., ignore_eos: bool = ...) -> None: ...

class SaveCheckpointReply(_message.Message):
    __slots__ = ["bytes", "path", "policy_version", "step"]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    bytes: int
    path: str
    policy_version: int
    step: int
    def __init__(self, path: _Optional[str] = ..., step: _Optional[int] = ..., policy_version: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class SaveCheckpointRequest(_message.Message):
    __slots__ = ["path"]
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class ScoreItem(_message.Message):
    __slots__ = ["completion", "prompt"]
    COMPLETION_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    completion: _common_pb2.Continuation
    prompt: _common_pb2.Prompt
    def __init__(self, prompt: _Optional[_Union[_common_pb2.Prompt, _Mapping]] = ..., completion: _Optional[_Union[_common_pb2.Continuation, _Mapping]] = ...) -> None: ...

class ScoreReply(_message.Message):
    __slots__ = ["policy_version", "results"]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    policy_version: int
    results: _containers.RepeatedCompositeFieldContainer[ScoreResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ScoreResult, _Mapping]]] = ..., policy_version: _Optional[int] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ["items", "score_with"]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SCORE_WITH_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ScoreItem]
    score_with: ScoreWith
    def __init__(self, items: _Optional[_Iterable[_Union[ScoreItem, _Mapping]]] = ..., score_with: _Optional[_Union[ScoreWith, str]] = ...) -> None: ...

class ScoreResult(_message.Message):
    __slots__ = ["completion_token_ids", "policy_logprobs", "reference_logprobs"]
    COMPLETION_TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    POLICY_LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    completion_token_ids: _containers.RepeatedScalarFieldContainer[int]
    policy_logprobs: _containers.RepeatedScalarFieldContainer[float]
    reference_logprobs: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, completion_token_ids: _Optional[_Iterable[int]] = ..., policy_logprobs: _Optional[_Iterable[float]] = ..., reference_logprobs: _Optional[_Iterable[float]] = ...) -> None: ...

class SftBatch(_message.Message):
    __slots__ = ["pairs"]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    pairs: _containers.RepeatedCompositeFieldContainer[SftPair]
    def __init__(self, pairs: _Optional[_Iterable[_Union[SftPair, _Mapping]]] = ...) -> None: ...

class SftPair(_message.Message):
    __slots__ = ["completion", "prompt"]
    COMPLETION_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    completion: _common_pb2.Continuation
    prompt: _common_pb2.Prompt
    def __init__(self, prompt: _Optional[_Union[_common_pb2.Prompt, _Mapping]] = ..., completion: _Optional[_Union[_common_pb2.Continuation, _Mapping]] = ...) -> None: ...

class StartJobReply(_message.Message):
    __slots__ = ["job"]
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: JobStatusReply
    def __init__(self, job: _Optional[_Union[JobStatusReply, _Mapping]] = ...) -> None: ...

class StartJobRequest(_message.Message):
    __slots__ = ["config_path", "config_toml"]
    CONFIG_PATH_FIELD_NUMBER: _ClassVar[int]
    CONFIG_TOML_FIELD_NUMBER: _ClassVar[int]
    config_path: str
    config_toml: str
    def __init__(self, config_path: _Optional[str] = ..., config_toml: _Optional[str] = ...) -> None: ...

class StopJobReply(_message.Message):
    __slots__ = ["job"]
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: JobStatusReply
    def __init__(self, job: _Optional[_Union[JobStatusReply, _Mapping]] = ...) -> None: ...

class StopJobRequest(_message.Message):
    __slots__ = ["job_id"]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class TokenizeReply(_message.Message):
    __slots__ = ["tokens"]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[_common_pb2.TokenIds]
    def __init__(self, tokens: _Optional[_Iterable[_Union[_common_pb2.TokenIds, _Mapping]]] = ...) -> None: ...

class TokenizeRequest(_message.Message):
    __slots__ = ["add_special_tokens", "special_tokens_as_text", "texts"]
    ADD_SPECIAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SPECIAL_TOKENS_AS_TEXT_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    add_special_tokens: bool
    special_tokens_as_text: bool
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., add_special_tokens: bool = ..., special_tokens_as_text: bool = ...) -> None: ...

class UpdateMetrics(_message.Message):
    __slots__ = ["chosen_rewards", "clip_fraction", "entropy", "grad_norm", "groups_flat", "kl", "learning_rate", "log_ratio_abs_max", "log_ratio_abs_mean", "loss", "margin", "pairs", "rejected_rewards", "reward_mean", "reward_std", "seconds", "sequences", "tokens"]
    CHOSEN_REWARDS_FIELD_NUMBER: _ClassVar[int]
    CLIP_FRACTION_FIELD_NUMBER: _ClassVar[int]
    ENTROPY_FIELD_NUMBER: _ClassVar[int]
    GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FLAT_FIELD_NUMBER: _ClassVar[int]
    KL_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    LOG_RATIO_ABS_MAX_FIELD_NUMBER: _ClassVar[int]
    LOG_RATIO_ABS_MEAN_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_REWARDS_FIELD_NUMBER: _ClassVar[int]
    REWARD_MEAN_FIELD_NUMBER: _ClassVar[int]
    REWARD_STD_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    chosen_rewards: float
    clip_fraction: float
    entropy: float
    grad_norm: float
    groups_flat: int
    kl: float
    learning_rate: float
    log_ratio_abs_max: float
    log_ratio_abs_mean: float
    loss: float
    margin: float
    pairs: int
    rejected_rewards: float
    reward_mean: float
    reward_std: float
    seconds: float
    sequences: int
    tokens: int
    def __init__(self, loss: _Optional[float] = ..., kl: _Optional[float] = ..., clip_fraction: _Optional[float] = ..., entropy: _Optional[float] = ..., grad_norm: _Optional[float] = ..., learning_rate: _Optional[float] = ..., tokens: _Optional[int] = ..., sequences: _Optional[int] = ..., reward_mean: _Optional[float] = ..., reward_std: _Optional[float] = ..., chosen_rewards: _Optional[float] = ..., rejected_rewards: _Optional[float] = ..., margin: _Optional[float] = ..., seconds: _Optional[float] = ..., log_ratio_abs_mean: _Optional[float] = ..., log_ratio_abs_max: _Optional[float] = ..., groups_flat: _Optional[int] = ..., pairs: _Optional[int] = ...) -> None: ...

class UpdateReply(_message.Message):
    __slots__ = ["applied", "metrics", "policy_version", "skipped_reason", "step"]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_REASON_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    metrics: UpdateMetrics
    policy_version: int
    skipped_reason: str
    step: int
    def __init__(self, applied: bool = ..., skipped_reason: _Optional[str] = ..., metrics: _Optional[_Union[UpdateMetrics, _Mapping]] = ..., policy_version: _Optional[int] = ..., step: _Optional[int] = ...) -> None: ...

class UpdateRequest(_message.Message):
    __slots__ = ["accumulate", "dpo", "grpo", "learning_rate", "sft"]
    ACCUMULATE_FIELD_NUMBER: _ClassVar[int]
    DPO_FIELD_NUMBER: _ClassVar[int]
    GRPO_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    SFT_FIELD_NUMBER: _ClassVar[int]
    accumulate: bool
    dpo: DpoBatch
    grpo: GrpoBatch
    learning_rate: float
    sft: SftBatch
    def __init__(self, grpo: _Optional[_Union[GrpoBatch, _Mapping]] = ..., dpo: _Optional[_Union[DpoBatch, _Mapping]] = ..., sft: _Optional[_Union[SftBatch, _Mapping]] = ..., accumulate: bool = ..., learning_rate: _Optional[float] = ...) -> None: ...

class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class ScoreWith(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class KlEstimator(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class LossAggregation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class AdvantageScaling(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class PolicyObjective(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class DpoLoss(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class ExportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
