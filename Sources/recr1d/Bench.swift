import ArgumentParser
import Foundation
import RecR1Formats
import RecR1Kernels
import RecR1Learning
import RecR1Model
import RecR1Policy
import RecR1Service
import RecR1Tokenizer

/// `recr1d bench`: the engine's speed on this machine, as one JSON object, optionally beside the PyTorch
/// reference (scripts/reference/bench_torch.py) measured in the same run.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure decode, score and training throughput; print JSON.",
        discussion: """
            decode_1x64, decode_8x64: an 84-token ChatML prompt is prefilled once, its cache shared by the \
            samples, then 64 new tokens each are sampled (temperature 1, no top-k/top-p, end tokens not \
            special); tok/s = samples x 64 / decode seconds (prefill timed apart). score_8x128: log-probs of \
            8 sequences x 128 tokens in one pass; tok/s = 1024 / seconds. train_lora_8x128, train_full_8x128: \
            one optimiser step (forward, backward, AdamW) of SFT on 8 x 128 tokens, LoRA (rank 16, all seven \
            layers) or full fine-tuning; tok/s = 1024 / seconds; matmul_gflops = the step's product FLOPs over \
            the time spent in products, matmul_fraction_of_peak = that over matmul_peak (one 2048^3 product \
            on the same backend: on AMX, the AMX rate). grpo_step: one whole GRPO step as in \
            scripts/reference/bench_trl_grpo.py — 8 ChatML prompts x 8 samples x 64 new tokens (temperature 1, \
            never stopping early), reward = share of distinct tokens, then one full fine-tuning update (GRPO, \
            beta 0, AdamW lr 1e-6, micro-batches of at most 2,048 tokens); seconds per step, split into \
            generation and update. grpo_step_rec: the same step in the shape of a recommender's (8 ML-100K \
            rating prompts of scripts/reference/grpo_step_rec_prompts.json, about 290 tokens each, x 8 samples \
            x 96 new tokens, LoRA rank 16 alpha 32 on every projection, lr 1e-5), each prompt trained once for \
            its 8 samples (shared prefix), with the split of generation and of the update apart and the \
            update's products against matmul_peak. Each figure is the median of \
            --repeats runs after a warm-up. Each figure splits its wall time: matmul_share (products with the \
            weights), attention_share (attention over the cache or the sequence), packing_share (weights into \
            the backend's layout after they change), optimizer_share (AdamW and its gradient norm) and \
            other_share (RMSNorm, RoPE, SiLU, softmax and log-softmax over the vocabulary, sampling, the rest); \
            matmul_gflops counts the products with the weights only. With --reference, the PyTorch script runs \
            too and ratios are added (--reference-bf16: \
            also under PyTorch's bf16 autocast); with --grpo-step or --grpo-step-rec as well, TRL's \
            GRPOTrainer runs the same GRPO step (scripts/reference/bench_trl_grpo.py --shape chat or rec; rec \
            with PEFT LoRA) and ratio_grpo_step[_rec]_vs_trl_grpo[_bf16] is its seconds over ours.
            """)

    @Option(help: "A GGUF file or Hugging Face directory (default: SmolLM2 from its package).")
    var model: String?
    @Option(help: "BLAS threads.")
    var threads = 2
    @Option(help: "Timed runs per figure; the median is reported.")
    var repeats = 3
    @Flag(help: "Also run the PyTorch reference (needs scripts/reference/setup.sh) and print ratios.")
    var reference = false
    @Flag(help: "With --reference: also PyTorch under bf16 autocast (and TRL under bf16 with --grpo-step).")
    var referenceBf16 = false
    @Option(help: "The reference script.")
    var referenceScript = "scripts/reference/bench_torch.py"
    @Option(help: "The TRL GRPO reference script (with --grpo-step).")
    var trlScript = "scripts/reference/bench_trl_grpo.py"
    @Option(help: "The GRPO step's 8 user messages (JSON), shared with the TRL script.")
    var grpoPromptsFile = "scripts/reference/grpo_step_prompts.json"
    @Option(help: "TRL optimiser steps, the first a warm-up (with --grpo-step --reference).")
    var trlSteps = 3
    @Option(help: "Python for the reference.")
    var python = "python3"
    @Flag(help: "Decode with the fp32 weights instead of the file's quantised blocks.")
    var fp32Weights = false
    @Flag(help: "Skip the training figures.")
    var noTraining = false
    @Flag(help: "Only the training figures.")
    var onlyTraining = false
    @Option(help: "openblas, onednn-f32 or onednn-bf16 for products above 16 rows (default: the fastest here).")
    var matmulBackend: String?
    @Option(help: "Training modes to measure: lora, full, or both (comma-separated).")
    var trainModes = "lora,full"
    @Option(help: "Products of at most this many rows use the C kernel; more go to the matmul backend (default 16).")
    var skinnyRows: Int?
    @Flag(help: "Also time a whole GRPO step (8 prompts x 8 samples x 64 tokens, then the update).")
    var grpoStep = false
    @Flag(help: "Also time a recommendation-shaped GRPO step (8 rating prompts of about 290 tokens x 8 samples x 96 tokens, LoRA r16).")
    var grpoStepRec = false
    @Flag(help: "With --grpo-step or --grpo-step-rec: also the same step as a recipe runs it, a Python client of a recr1d over nng (scripts/bench_loop.py), and its time over the engine's.")
    var loop = false
    @Flag(help: "With --grpo-step or --grpo-step-rec: train every sample on its whole prompt (no shared prefixes), as before #15.")
    var noSharedPrefix = false
    @Option(help: "The client-loop script (with --loop).")
    var loopScript = "scripts/bench_loop.py"
    @Option(help: "The recommendation-shaped step's 8 user messages (JSON), shared with the TRL script.")
    var grpoRecPromptsFile = "scripts/reference/grpo_step_rec_prompts.json"

    /// A GRPO step to time, the same on both sides (ours and bench_trl_grpo.py's `--shape`).
    struct StepShape {
        let key: String           // the figure's name in the JSON
        let trlShape: String      // bench_trl_grpo.py --shape
        let promptsFile: String
        let newTokens: Int
        let lora: Bool            // LoRA r16, alpha 32 on every projection; else full fine-tuning
        let learningRate: Float

        /// The shape as bench_loop.py and bench_trl_grpo.py take it, so neither keeps a copy of the shapes.
        var scriptArguments: [String] {
            ["--prompts", promptsFile, "--new-tokens", "\(newTokens)", "--training", lora ? "lora" : "full",
             "--learning-rate", "\(learningRate)"]
        }
    }

    var stepShapes: [StepShape] {
        (grpoStep ? [StepShape(key: "grpo_step", trlShape: "chat", promptsFile: grpoPromptsFile, newTokens: 64,
                               lora: false, learningRate: 1e-6)] : [])
            + (grpoStepRec ? [StepShape(key: "grpo_step_rec", trlShape: "rec", promptsFile: grpoRecPromptsFile,
                                        newTokens: 96, lora: true, learningRate: 1e-5)] : [])
    }

    static let userWords = ("Please write a short, friendly paragraph for a new visitor explaining how a lighthouse works, why "
        + "its light rotates, how sailors use the pattern of flashes to know which lighthouse they are looking "
        + "at, and what the keepers used to do every night before the lights became automatic and were run by "
        + "small computers instead of people living on the rocks far from any town or harbour.").split(separator: " ")

    func validate() throws {
        if noTraining && onlyTraining { throw ValidationError("--no-training and --only-training exclude each other") }
        if noTraining && (grpoStep || grpoStepRec) {
            throw ValidationError("--grpo-step and --grpo-step-rec are training figures: drop --no-training")
        }
        if loop && !(grpoStep || grpoStepRec) { throw ValidationError("--loop needs --grpo-step or --grpo-step-rec") }
        if referenceBf16 && !reference { throw ValidationError("--reference-bf16 needs --reference") }
        if trlSteps < 2 { throw ValidationError("--trl-steps must be at least 2 (the first is a warm-up)") }
        for mode in trainModes.split(separator: ",") where !["lora", "full"].contains(mode) {
            throw ValidationError("--train-modes: '\(mode)' is not lora or full")
        }
    }

    func run() throws {
        try BLAS.load(threads: threads)
        Parallel.threads = threads
        MatMul.useQuantized = !fp32Weights
        if let matmulBackend {
            guard let chosen = MatMul.Backend(rawValue: matmulBackend) else {
                throw ValidationError("--matmul-backend must be one of \(MatMul.Backend.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            MatMul.use(chosen)
        } else {
            MatMul.use(MatMul.fastestBackend)
        }
        if let skinnyRows { MatMul.skinnyRowLimit = skinnyRows }
        progress("loading the model")
        let loadStart = ContinuousClock.now
        let policy = try Policy.load(path: model ?? DefaultModel.locate())
        let loadSeconds = seconds(ContinuousClock.now - loadStart)
        let prompt = try chatPrompt(policy.tokenizer, tokens: 84)

        var result: [String: Any] = [
            "engine": "recr1d \(RecR1Version.current)", "blas_core": BLAS.core, "matmul_backend": MatMul.backend.rawValue,
            "matmul": "above \(MatMul.skinnyRowLimit) rows \(MatMul.backend.rawValue)\(MatMul.backend == .onednnBF16 ? " (bf16 inputs, fp32 accumulation)" : " (fp32)"); at most \(MatMul.skinnyRowLimit) rows, "
                + (fp32Weights ? "the skinny C kernel on fp32 weights" : "the C kernel on the file's quantised blocks where it has them"),
            "threads": threads, "repeats": repeats, "prompt_tokens": prompt.count,
            "load_seconds": rounded(loadSeconds, 2),
        ]
        let decoder = policy.decoder
        let generator = Generator(decoder: decoder, endTokens: []) { _ in "" }
        var settings = SamplingSettings()
        settings.temperature = 1
        settings.maxNewTokens = 64

        var random = RandomStream(seed: 5)
        let sequences = (0..<8).map { _ in (0..<128).map { _ in Int32(random.next() % UInt64(decoder.config.vocabSize)) } }
        let items = sequences.map { (prompt: Array($0.prefix(1)), completion: Array($0.dropFirst())) }
        if !onlyTraining {
        let prefill = measure("prefill") { prefillOnce(decoder, prompt) }
        result["prefill"] = summary(prefill, tokens: prompt.count)
        for batch in [1, 8] {
            let runs = measure("decode \(batch)x64") {
                settings.seed = 1
                let total = time { _ = generator.generate(prompts: [prompt], n: batch, settings: settings) }
                return total - prefill.median
            }
            result["decode_\(batch)x64"] = summary(runs, tokens: batch * 64)
        }
        result["score_8x128"] = summary(measure("score 8x128") { time { _ = Scorer.score(decoder, items: items, maxRows: 1024) } },
                                        tokens: 1024)
        result["peak_rss_mib"] = peakRSSMiB()
        }

        var matmulPeak: Double?
        if !noTraining {
            let peak = measureMatmulPeak()
            matmulPeak = peak["gflops"] as? Double
            result["matmul_peak"] = peak
            // Full fine-tuning last: its gradients and moments dominate the peak memory.
            for mode in ["lora", "full"] where trainModes.split(separator: ",").contains(Substring(mode)) {
                let trainee = try Policy.load(path: model ?? DefaultModel.locate()).decoder
                var trainerSettings = TrainerSettings()
                trainerSettings.lora = mode == "lora" ? LoRASettings(rank: 16, alpha: 32) : nil
                trainerSettings.maxTokensPerMicroBatch = 1024
                trainerSettings.seed = 1
                let trainer = Trainer(decoder: trainee, settings: trainerSettings)
                let runs = measure("train \(mode) 8x128") {
                    time { _ = trainer.sft(prompts: items.map(\.prompt), completions: items.map(\.completion)) }
                }
                var figure = summary(runs, tokens: 1024)
                // How fast the step's matrix products run, against the best this backend does here.
                let flops = Self.trainingFLOPs(trainee.config, sequences: 8, length: 128, scored: 127, full: mode == "full")
                let productSeconds = runs.median * runs.matmulShare  // attention's products are timed apart
                figure["matmul_gflops"] = rounded(flops / productSeconds / 1e9, 1)
                if let peak = matmulPeak { figure["matmul_fraction_of_peak"] = rounded(flops / productSeconds / 1e9 / peak, 3) }
                result["train_\(mode)_8x128"] = figure
                result["peak_rss_after_train_\(mode)_mib"] = peakRSSMiB()
            }
        }

        for shape in stepShapes { result[shape.key] = try measureGRPOStep(shape, matmulPeak: matmulPeak) }
        if loop {
            // The same step through the service: what a recipe's loop costs beyond the engine's step.
            let binary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
            for shape in stepShapes {
                var arguments = ["--recr1d", binary] + shape.scriptArguments + ["--threads", "\(threads)", "--repeats", "\(repeats)"]
                if let matmulBackend { arguments += ["--matmul-backend", matmulBackend] }
                let client = try runScript(loopScript, arguments, hint: "build recr1d and pip install clients/python first")
                result["loop_\(shape.key)"] = client
                if let theirs = client["seconds"] as? Double, let ours = (result[shape.key] as? [String: Any])?["seconds"] as? Double {
                    result["ratio_loop_over_engine_\(shape.key)"] = rounded(theirs / ours, 3)
                }
            }
        }

        if reference {
            let keys = ["decode_1x64", "decode_8x64", "score_8x128", "prefill", "train_full_8x128", "train_lora_8x128"]
            func ratios(_ torch: [String: Any]) -> [String: Any] {
                var out: [String: Any] = [:]
                for key in keys {
                    if let ours = (result[key] as? [String: Any])?["tok_per_s"] as? Double,
                       let theirs = (torch[key] as? [String: Any])?["tok_per_s"] as? Double, theirs > 0 {
                        out[key] = rounded(ours / theirs, 2)
                    }
                }
                return out
            }
            let torch = try runReference(referenceScript, torchArguments())
            result["reference"] = torch
            result["ratio_vs_reference"] = ratios(torch)
            if referenceBf16 {
                let autocast = try runReference(referenceScript, torchArguments() + ["--bf16"])
                result["reference_bf16_autocast"] = autocast
                result["ratio_vs_reference_bf16_autocast"] = ratios(autocast)
            }
            for shape in stepShapes {
                guard let ours = (result[shape.key] as? [String: Any])?["seconds"] as? Double else { continue }
                let suffix = shape.key.dropFirst("grpo_step".count)  // "" or "_rec"
                for bf16 in referenceBf16 ? [false, true] : [false] {
                    let trl = try runReference(trlScript, ["--threads", "\(threads)", "--steps", "\(trlSteps)"]
                                               + shape.scriptArguments + ["--shape", shape.trlShape] + (bf16 ? ["--bf16"] : []))
                    let name = "reference_trl_grpo\(suffix)" + (bf16 ? "_bf16" : "")
                    result[name] = trl
                    if let theirs = trl["step_seconds_median"] as? Double {
                        result["ratio_\(shape.key)_vs_trl_grpo" + (bf16 ? "_bf16" : "")] = rounded(theirs / ours, 2)
                    }
                }
            }
        }
        let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    /// FLOPs of one training step's products with the weights, on `sequences` sequences of `length` tokens,
    /// `scored` of each scored: forward (the linear layers; the head on scored rows), and backward the input
    /// gradients of every product and the weight gradients in full fine-tuning only. Attention's products
    /// (timed apart) and LoRA's rank-16 products are left out.
    static func trainingFLOPs(_ c: ModelConfig, sequences: Int, length: Int, scored: Int, full: Bool) -> Double {
        let linear = 2.0 * Double(c.layers * (2 * c.dim * c.qDim + 2 * c.dim * c.kvDim + 3 * c.dim * c.ffnDim))
        let head = 2.0 * Double(c.dim * c.vocabSize)
        let weights = Double(sequences * length) * linear + Double(sequences * scored) * head
        return weights * (full ? 3 : 2)
    }

    /// The backend's rate on one large product (2048 × 2048 by 2048 × 2048, weights packed where the backend
    /// packs them), best of 5: the ceiling the training figures' `matmul_fraction_of_peak` is measured against.
    func measureMatmulPeak() -> [String: Any] {
        let n = 2048
        var random = RandomStream(seed: 9)
        let x = (0..<(n * n)).map { _ in Float(Int(random.next() % 2001) - 1000) / 1000 }
        let w = (0..<(n * n)).map { _ in Float(Int(random.next() % 2001) - 1000) / 1000 }
        var y = [Float](repeating: 0, count: n * n)
        let packed = MatMul.backend == .openblas ? nil : PackedMatrix(outDim: n, inDim: n, bf16: MatMul.backend == .onednnBF16)
        w.withUnsafeBufferPointer { try? packed?.pack($0.baseAddress!, role: .forward) }
        let best = (0..<6).map { _ in
            time { MatMul.linear(&y, x, w, packed: packed, rows: n, inDim: n, outDim: n) }
        }.dropFirst().min()!
        let gflops = 2 * Double(n * n * n) / best / 1e9
        progress("matmul peak: \(rounded(gflops, 1)) GFLOP/s on \(MatMul.backend.rawValue)")
        return ["gflops": rounded(gflops, 1), "shape": "\(n)x\(n) by \(n)x\(n)", "backend": MatMul.backend.rawValue,
                "implementation": MatMul.backend == .openblas ? "OpenBLAS \(BLAS.core)"
                    : MatMul.dnnlImplementation(m: n, n: n, k: n, bf16: MatMul.backend == .onednnBF16)]
    }

    /// A GRPO step's prompts: the 8 user messages of `file` (shared with bench_trl_grpo.py) as ChatML with
    /// the template's default system line.
    func grpoPrompts(_ tokenizer: Tokenizer, file: String) throws -> [[Int32]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: file))
        guard let messages = try JSONSerialization.jsonObject(with: data) as? [String], messages.count == 8 else {
            throw ValidationError("\(file) must hold a JSON list of 8 strings")
        }
        let template = try tokenizer.chatTemplate()
        return messages.map { message in
            let text = template.render([ChatMessage(role: "user", content: message)], addGenerationPrompt: true)
            return tokenizer.encode(text, addSpecialTokens: false).map(Int32.init)
        }
    }

    /// One whole GRPO step of `shape`, timed `repeats` times after a warm-up step: generation (every sample
    /// runs to `newTokens`), rewards (the share of distinct tokens, as the TRL script), update (beta 0, so
    /// no reference pass; the sampler's log-probs are the old ones, so no extra pass). Each phase's time is
    /// split by kind of work; matmul_fraction_of_peak is the update's products against `matmulPeak`.
    func measureGRPOStep(_ shape: StepShape, matmulPeak: Double?) throws -> [String: Any] {
        let policy = try Policy.load(path: model ?? DefaultModel.locate())
        let prompts = try grpoPrompts(policy.tokenizer, file: shape.promptsFile)
        var trainerSettings = TrainerSettings()
        trainerSettings.lora = shape.lora ? LoRASettings(rank: 16, alpha: 32) : nil
        trainerSettings.schedule = .constant(shape.learningRate)
        trainerSettings.sharePrefixes = !noSharedPrefix
        let trainer = Trainer(decoder: policy.decoder, settings: trainerSettings)
        let generator = Generator(decoder: policy.decoder, endTokens: []) { _ in "" }
        var sampling = SamplingSettings()
        sampling.temperature = 1
        sampling.maxNewTokens = shape.newTokens
        var grpo = GRPOSettings()
        grpo.beta = 0
        let what = shape.key.replacingOccurrences(of: "_", with: " ")
        var steps: [(generate: Double, update: Double)] = []
        var generateWork: [WorkClock.Kind: Double] = [:], updateWork: [WorkClock.Kind: Double] = [:]
        for index in 0...repeats {
            progress(index == 0 ? "\(what): warm-up" : "\(what): run \(index)/\(repeats)")
            sampling.seed = UInt64(index + 1)
            var completions: [[Completion]] = []
            WorkClock.start()
            let generate = time { completions = generator.generate(prompts: prompts, n: 8, settings: sampling) }
            let generateShares = WorkClock.stop()
            let groups = zip(prompts, completions).map { prompt, group in
                group.map { GRPOSample(prompt: prompt, completion: $0.tokens, oldLogprobs: $0.logprobs,
                                       reward: Float(Set($0.tokens).count) / Float(max(1, $0.tokens.count))) }
            }
            var report: Trainer.Report?
            WorkClock.start()
            let update = time { report = trainer.grpo(groups: groups, settings: grpo) }
            let updateShares = WorkClock.stop()
            precondition(report?.applied == true, "the GRPO update was not applied: \(report?.skippedReason ?? "")")
            if index > 0 {
                steps.append((generate, update))
                generateWork.merge(generateShares, uniquingKeysWith: +)
                updateWork.merge(updateShares, uniquingKeysWith: +)
            }
            progress("\(what): generate \(rounded(generate, 2)) s, update \(rounded(update, 2)) s, "
                     + "reward \(rounded(report?.metrics["reward_mean"] ?? 0, 3))")
        }
        func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
        let totals = steps.map { $0.generate + $0.update }
        let generateTotal = steps.reduce(0) { $0 + $1.generate }, updateTotal = steps.reduce(0) { $0 + $1.update }
        var figure = split(generateWork.merging(updateWork, uniquingKeysWith: +).mapValues { $0 / totals.reduce(0, +) })
        figure.merge([
            "seconds": rounded(median(totals), 2), "seconds_each": totals.map { rounded($0, 2) },
            "generate_seconds": rounded(median(steps.map(\.generate)), 2),
            "update_seconds": rounded(median(steps.map(\.update)), 2),
            "generate_split": split(generateWork.mapValues { $0 / generateTotal }),
            "update_split": split(updateWork.mapValues { $0 / updateTotal }),
            "prompt_tokens": prompts.map(\.count), "samples": 64, "new_tokens": shape.newTokens,
            "training": shape.lora ? "lora r16 alpha 32, every projection" : "full",
            "shared_prefix": trainerSettings.sharePrefixes,
            "peak_rss_mib": peakRSSMiB()]) { $1 }
        // The update's products with the weights: each prompt once (shared by its 8 samples; else 8 times), every sample's
        // completion, the head on the completion rows.
        let c = policy.decoder.config
        let rows = prompts.reduce(0) { $0 + (trainerSettings.sharePrefixes ? $1.count : 8 * $1.count) + 8 * shape.newTokens }
        let linear = 2.0 * Double(c.layers * (2 * c.dim * c.qDim + 2 * c.dim * c.kvDim + 3 * c.dim * c.ffnDim))
        let flops = (Double(rows) * linear + Double(64 * shape.newTokens) * 2.0 * Double(c.dim * c.vocabSize))
            * (shape.lora ? 2 : 3)
        let productSeconds = updateTotal / Double(steps.count) * ((updateWork[.products] ?? 0) / updateTotal)
        if productSeconds > 0 {
            figure["update_matmul_gflops"] = rounded(flops / productSeconds / 1e9, 1)
            if let matmulPeak { figure["update_matmul_fraction_of_peak"] = rounded(flops / productSeconds / 1e9 / matmulPeak, 3) }
        }
        return figure
    }

    func peakRSSMiB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return rounded(Double(usage.ru_maxrss) / 1024, 1)
    }

    /// The shortest prefix of `userWords` whose rendered ChatML prompt has exactly `tokens` tokens.
    func chatPrompt(_ tokenizer: Tokenizer, tokens: Int) throws -> [Int32] {
        let template = try tokenizer.chatTemplate()
        for count in 1...Self.userWords.count {
            let text = template.render([ChatMessage(role: "user", content: Self.userWords.prefix(count).joined(separator: " "))],
                                       addGenerationPrompt: true)
            let ids = tokenizer.encode(text, addSpecialTokens: false)
            if ids.count == tokens { return ids.map(Int32.init) }
            if ids.count > tokens { break }
        }
        throw ValidationError("no prefix of the benchmark text renders to exactly \(tokens) tokens with this tokenizer")
    }

    func prefillOnce(_ decoder: Decoder, _ prompt: [Int32]) -> Double {
        let cache = KVCache(config: decoder.config, slots: 1, capacity: prompt.count)
        return time {
            _ = decoder.forward(prompt.enumerated().map { Decoder.Row(token: $1, slot: 0, position: $0) },
                                cache: cache, logitRows: [prompt.count - 1])
        }
    }

    func torchArguments() -> [String] {
        var arguments = ["--threads", "\(threads)", "--repeats", "\(repeats)"]
        if noTraining { arguments.append("--no-training") }
        if onlyTraining { arguments.append("--only-training") }
        if !noTraining { arguments += ["--train-modes", trainModes] }
        return arguments
    }

    func runReference(_ script: String, _ arguments: [String]) throws -> [String: Any] {
        try runScript(script, arguments, hint: "run scripts/reference/setup.sh first")
    }

    /// Runs a Python script (stdout: one JSON object; stderr passes through as progress).
    func runScript(_ script: String, _ arguments: [String], hint: String) throws -> [String: Any] {
        progress("running \(python) \(script) \(arguments.joined(separator: " "))")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, script] + arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ValidationError("\(script) failed (exit \(process.terminationStatus)); \(hint)")
        }
        return json
    }

    /// Timed runs of `body` (which returns the seconds that count) after a warm-up, and the share of the
    /// runs' wall time spent in matrix products (for decoding, its prefill included).
    func measure(_ what: String, _ body: () -> Double) -> Runs {
        progress("\(what): warm-up")
        _ = body()
        var wall = 0.0
        WorkClock.start()
        let seconds = (1...repeats).map { index in
            var s = 0.0
            wall += time { s = body() }
            progress("\(what): run \(index)/\(repeats) \(rounded(s, 3)) s")
            return s
        }
        return Runs(seconds: seconds, shares: WorkClock.stop().mapValues { $0 / wall })
    }

    struct Runs {
        var seconds: [Double]
        /// Share of the runs' wall time by kind of work; the rest is other_share (`split`).
        var shares: [WorkClock.Kind: Double]
        var median: Double { seconds.sorted()[seconds.count / 2] }
        var matmulShare: Double { shares[.products] ?? 0 }
    }

    /// tok/s, the runs' seconds and the split of their time (`split`).
    func summary(_ runs: Runs, tokens: Int) -> [String: Any] {
        let best = runs.seconds.min()!
        return split(runs.shares).merging([
            "tok_per_s": rounded(Double(tokens) / runs.median, 2), "best_tok_per_s": rounded(Double(tokens) / best, 2),
            "seconds": runs.seconds.map { rounded($0, 4) }]) { $1 }
    }

    /// The split of the time: matmul_share (products with the weights), attention_share, packing_share
    /// (weights into the backend's layout after a change), optimizer_share (AdamW with its gradient norm)
    /// and other_share (norms, RoPE, SiLU, softmax and log-softmax, sampling, the rest).
    func split(_ shares: [WorkClock.Kind: Double]) -> [String: Any] {
        var figure: [String: Any] = ["other_share": rounded(max(0, 1 - shares.values.reduce(0, +)), 3)]
        for kind in WorkClock.Kind.allCases {
            figure[kind == .products ? "matmul_share" : "\(kind.rawValue)_share"] = rounded(shares[kind] ?? 0, 3)
        }
        return figure
    }

    func time(_ body: () -> Void) -> Double {
        let start = ContinuousClock.now
        body()
        return seconds(ContinuousClock.now - start)
    }

    func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
    func rounded(_ x: Double, _ places: Int) -> Double { (x * pow(10, Double(places))).rounded() / pow(10, Double(places)) }
    func progress(_ message: String) { FileHandle.standardError.write(Data("bench: \(message)\n".utf8)) }
}
