import Foundation
import RecR1Formats
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
    private let lock = NSLock()
    private var currentVersion: UInt64 = 0

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
    public var version: UInt64 { lock.withLock { currentVersion } }

    /// Runs `body` with the engine to itself.
    public func exclusive<T>(_ body: () throws -> T) rethrows -> T {
        try lock.withLock(body)
    }

    public func generate(prompts: [[Int32]], n: Int, settings: SamplingSettings,
                         shouldStop: () -> Bool = { false }) -> (completions: [[Completion]], version: UInt64) {
        exclusive {
            let generator = Generator(decoder: decoder, endTokens: endTokens) { [tokenizer] tokens in
                tokenizer.decode(tokens.map(Int.init))
            }
            return (generator.generate(prompts: prompts, n: n, settings: settings, shouldStop: shouldStop), currentVersion)
        }
    }

    public func score(_ items: [(prompt: [Int32], completion: [Int32])]) -> (logprobs: [[Float]], version: UInt64) {
        exclusive { (Scorer.score(decoder, items: items), currentVersion) }
    }
}
