import Foundation
import RecR1Formats
import RecR1Learning
import RecR1Model
import RecR1Tokenizer

/// The policy recr1d serves: the decoder, its tokenizer, and what they are. One call runs at a time
/// (the engine's buffers are shared); concurrent requests wait for the lock.
public final class Policy {
    public struct Description {
        public var name: String
        public var source: String
        public var weightsType: String
    }

    public let decoder: Decoder
    public let tokenizer: Tokenizer
    public let description: Description
    public let endTokens: Set<Int32>
    private let lock = FairLock()   // the engine: first come, first served
    /// Changed only with the engine's lock held, and under `versionLock` too, so that `version` (Health,
    /// Info) can read it without waiting for a Generate or an Update to finish.
    private var currentVersion: UInt64 {
        get { versionLock.withLock { storedVersion } }
        set { versionLock.withLock { storedVersion = newValue } }
    }
    private var storedVersion: UInt64 = 0
    private let versionLock = NSLock()
    /// Draws the seeds of requests that give none, so that a seeded daemon (and a resumed one) repeats itself.
    private var seeder = RandomStream(seed: UInt64.random(in: .min ... .max))
    /// Trains the decoder; nil until `enableTraining`.
    public private(set) var trainer: Trainer?

    public init(decoder: Decoder, tokenizer: Tokenizer, description: Description) {
        self.decoder = decoder
        self.tokenizer = tokenizer
        self.description = description
        var ends = Set<Int32>()
        if let eos = tokenizer.eosTokenID { ends.insert(Int32(eos)) }
        // ChatML models end a turn with <|im_end|> whatever their eos says.
        if let imEnd = tokenizer.id(ofToken: "<|im_end|>") { ends.insert(Int32(imEnd)) }
        endTokens = ends
    }

    /// Loads a GGUF file or a Hugging Face directory (config.json, safetensors, tokenizer.json).
    public static func load(path: String) throws -> Policy {
        let source = try ModelSource.open(path)
        let decoder = try Decoder.load(source)
        let tokenizer: Tokenizer
        let name: String
        switch source {
        case .gguf(let gguf):
            tokenizer = try Tokenizer(gguf: gguf)
            name = gguf.metadata["general.name"]?.string ?? (path as NSString).lastPathComponent
        case .huggingFace(let directory, _, _):
            tokenizer = try Tokenizer(tokenizerJSON: directory + "/tokenizer.json")
            name = (directory as NSString).lastPathComponent
        }
        return Policy(decoder: decoder, tokenizer: tokenizer,
                      description: Description(name: name, source: path, weightsType: source.storedTypes))
    }

    public var config: ModelConfig { decoder.config }
    public var version: UInt64 { currentVersion }

    /// Sets up training (LoRA adapters or full fine-tuning) and seeds the sampler's seed stream.
    public func enableTraining(_ settings: TrainerSettings) {
        lock.withLock {
            trainer = Trainer(decoder: decoder, settings: settings)
            seeder = RandomStream(seed: settings.seed, stream: 0x5EED)
        }
    }

    /// One training call with the engine to itself; an applied optimiser step bumps the policy version.
    public func train(deadline: Date? = nil, _ body: (Trainer) throws -> Trainer.Report) throws -> (report: Trainer.Report, version: UInt64) {
        try exclusive(deadline: deadline) {
            guard let trainer else { preconditionFailure("enableTraining first") }
            let report = try body(trainer)
            if report.applied { currentVersion += 1 }
            return (report, currentVersion)
        }
    }

    /// Saves a checkpoint: the trainer's state, the policy version and the seed stream.
    public func saveCheckpoint(to path: String) throws -> (bytes: Int, step: Int, version: UInt64) {
        try lock.withLock {
            guard let trainer else { preconditionFailure("enableTraining first") }
            let bytes = try Checkpoint.save(trainer, policyVersion: currentVersion, seeder: seeder.state, to: path)
            return (bytes, trainer.optimizer.step, currentVersion)
        }
    }

    /// Loads a checkpoint into the trainer and restores the policy version and the seed stream; with
    /// `asReference` the loaded policy becomes the reference too. Nothing changes when it fails.
    public func loadCheckpoint(from path: String, asReference: Bool = false) throws -> (step: Int, version: UInt64, referenceIsBase: Bool) {
        try lock.withLock {
            guard let trainer else { preconditionFailure("enableTraining first") }
            let state = try Checkpoint.load(from: path, into: trainer)
            currentVersion = UInt64(state.policyVersion)!
            seeder.state = state.seeder.map { UInt64($0)! }
            if asReference { trainer.anchorReference() }
            return (state.step, currentVersion, trainer.referenceIsBase)
        }
    }

    /// The deadline passed while the request waited for the engine.
    public struct EngineBusy: Error, CustomStringConvertible {
        public init() {}
        public var description: String { "the engine stayed busy until the request's deadline" }
    }

    /// Runs `body` with the engine to itself; with a deadline, gives up waiting for it then.
    public func exclusive<T>(deadline: Date? = nil, _ body: () throws -> T) throws -> T {
        guard lock.lock(before: deadline) else { throw EngineBusy() }   // nil: waits for ever, never false
        defer { lock.unlock() }
        return try body()
    }

    public func generate(prompts: [[Int32]], n: Int, settings: SamplingSettings, deadline: Date? = nil,
                         shouldStop: @escaping () -> Bool = { false }) throws -> (completions: [[Completion]], version: UInt64) {
        let (completions, version) = try generate([Generator.Request(prompts: prompts, n: n, settings: settings, shouldStop: shouldStop)],
                                                  deadline: deadline)
        return (completions[0], version)
    }

    /// Several Generate requests in one engine pass; a request without a seed gets the next of the seed stream.
    public func generate(_ requests: [Generator.Request], deadline: Date? = nil) throws -> (completions: [[[Completion]]], version: UInt64) {
        try exclusive(deadline: deadline) { generateHoldingEngine(requests) }
    }

    /// `generate` for a caller that already holds the engine (inside `exclusive`); `finished` hears of each
    /// request as soon as its samples are done.
    public func generateHoldingEngine(_ requests: [Generator.Request], finished: (Int, [[Completion]], UInt64) -> Void = { _, _, _ in })
        -> (completions: [[[Completion]]], version: UInt64) {
        var requests = requests
        for r in requests.indices where requests[r].settings.seed == nil { requests[r].settings.seed = seeder.next() }
        let generator = Generator(decoder: decoder, endTokens: endTokens) { [tokenizer] tokens in
            tokenizer.decode(tokens.map(Int.init))
        }
        let version = currentVersion
        return (generator.generate(requests) { finished($0, $1, version) }, version)
    }

    public func score(_ items: [(prompt: [Int32], completion: [Int32])]) throws -> (logprobs: [[Float]], version: UInt64) {
        try exclusive { (Scorer.score(decoder, items: items), currentVersion) }
    }

    /// Log-probs under the policy and, when asked, under the reference (the base, or the policy a
    /// checkpoint anchored; without training the reference is the policy itself).
    public func score(_ items: [(prompt: [Int32], completion: [Int32])], policy withPolicy: Bool, reference withReference: Bool,
                      deadline: Date? = nil) throws -> (policy: [[Float]], reference: [[Float]], version: UInt64) {
        try exclusive(deadline: deadline) {
            let policyLogprobs = withPolicy ? Scorer.score(decoder, items: items) : []
            var referenceLogprobs: [[Float]] = []
            if withReference {
                referenceLogprobs = trainer?.withReference { Scorer.score($0, items: items) } ?? Scorer.score(decoder, items: items)
            }
            return (policyLogprobs, referenceLogprobs, currentVersion)
        }
    }
}
