import Foundation
import RecR1Learning
import RecR1Model

/// How recr1d trains its policy: the mode (LoRA or full), the optimiser, the schedule, the memory budget,
/// the seed and the rollout store. Part of `ServerConfig`; the same names in the TOML file and as flags.
public struct TrainingConfig: Equatable {
    public var mode = "lora"                   // "lora" or "full"
    public var loraRank = 16
    public var loraAlpha = 32.0
    public var loraTargets = LoRATarget.allCases.map(\.rawValue)
    /// 0 = the mode's default: 1e-4 for LoRA, 1e-5 for full fine-tuning.
    public var learningRate = 0.0
    public var lrSchedule = "constant"         // "constant", "linear" or "cosine" (each after warmup_steps)
    public var warmupSteps = 0
    public var totalSteps = 1000               // where linear and cosine reach their end
    public var minLRRatio = 0.0                // cosine's floor, as a fraction of the peak
    public var weightDecay = 0.0
    public var adamBeta1 = 0.9
    public var adamBeta2 = 0.999
    public var adamEpsilon = 1e-8
    public var maxGradNorm = 1.0               // 0 = no clipping
    /// The memory budget: tokens per micro-batch (about 1 MB of saved activations each for SmolLM2-135M).
    public var microBatchTokens = 2048
    /// Seeds the adapters' initialisation and the seeds of Generate requests that give none; 0 = random.
    public var seed: UInt64 = 0
    public var rolloutStoreCount = 65536
    public var rolloutStoreBytes = 256 << 20

    public init() {}

    public var defaultLearningRate: Double { mode == "full" ? 1e-5 : 1e-4 }

    /// The trainer's settings, or an error naming the setting that is wrong.
    public func trainerSettings() throws -> TrainerSettings {
        var s = TrainerSettings()
        switch mode {
        case "lora":
            let targets = try loraTargets.map { name -> LoRATarget in
                guard let target = LoRATarget(name: name) else {
                    throw ConfigError(key: "lora_targets", "'\(name)' is not one of q, k, v, o, gate, up, down")
                }
                return target
            }
            if targets.isEmpty { throw ConfigError(key: "lora_targets", "name at least one layer") }
            s.lora = LoRASettings(rank: loraRank, alpha: Float(loraAlpha), targets: targets)
        case "full":
            s.lora = nil
        default:
            throw ConfigError(key: "training_mode", "'\(mode)' is not lora or full")
        }
        let peak = Float(learningRate > 0 ? learningRate : defaultLearningRate)
        switch lrSchedule {
        case "constant": s.schedule = warmupSteps > 0 ? .warmupConstant(peak, warmup: warmupSteps) : .constant(peak)
        case "linear": s.schedule = .warmupLinear(peak, warmup: warmupSteps, total: totalSteps)
        case "cosine": s.schedule = .warmupCosine(peak, warmup: warmupSteps, total: totalSteps, minimum: Float(minLRRatio))
        default: throw ConfigError(key: "lr_schedule", "'\(lrSchedule)' is not constant, linear or cosine")
        }
        s.adamW = AdamWSettings(beta1: Float(adamBeta1), beta2: Float(adamBeta2), epsilon: Float(adamEpsilon),
                                weightDecay: Float(weightDecay))
        s.maxGradientNorm = Float(maxGradNorm)
        s.maxTokensPerMicroBatch = microBatchTokens
        s.seed = seed == 0 ? UInt64.random(in: 1 ... .max) : seed
        return s
    }
}
