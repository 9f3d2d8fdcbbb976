import Foundation
import RecR1Formats
import RecR1Model

/// A training checkpoint: a directory with
///
///     trainer.json                   step, policy version, RNG state, mode, LoRA settings, schedule, model shape
///     adapter_model.safetensors      LoRA: the adapters (PEFT's names and shapes)
///     model.safetensors              full fine-tuning: every weight (Hugging Face names)
///     optimizer.safetensors          AdamW moments m.<i>, v.<i> per trainable tensor, in visiting order
///     reference/                     the reference policy when it is anchored, not the base
///                                    (`Trainer.anchorReference`): adapter_model.safetensors or model.safetensors
///
/// written into a temporary directory, fsynced, and renamed into place (`DurableFile.replaceDirectory`).
/// Loading reads and checks everything before it changes anything: with the same settings, training
/// continues bit for bit as if it had never stopped.
public enum Checkpoint {
    public struct State: Codable, Equatable {
        public var format = 1
        public var mode: String
        public var lora: LoRASettings?
        public var step: Int
        /// UInt64 values as decimal strings: JSON numbers above 2^53 do not survive every parser.
        public var policyVersion: String
        public var seeder: [String]
        public var schedule: String
        public var architecture: String
        public var layers: Int
        public var hiddenSize: Int
        public var vocabSize: Int
        public var tensors: Int
        public var savedAt: String
        /// "anchored" when reference/ holds the reference policy; absent (older checkpoints) or "base".
        public var reference: String?
    }

    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// Saves the trainer (and the policy version and seed stream the caller keeps) to `path`. Returns the bytes written.
    @discardableResult
    public static func save(_ trainer: Trainer, policyVersion: UInt64, seeder: [UInt64], to path: String) throws -> Int {
        guard trainer.pendingAccumulation == 0 else {
            throw LoadError("\(trainer.pendingAccumulation) sequences of accumulated gradients wait for a step; "
                            + "finish the accumulation (an Update with accumulate = false) before saving")
        }
        let c = trainer.decoder.config
        var moments: [SafetensorsWriter.Tensor] = []
        for (i, m) in trainer.optimizer.moments.enumerated() {
            moments.append(.init(name: "m.\(i)", shape: [m.m.count], values: m.m))
            moments.append(.init(name: "v.\(i)", shape: [m.v.count], values: m.v))
        }
        let state = State(mode: trainer.mode, lora: trainer.settings.lora, step: trainer.optimizer.step,
                          policyVersion: String(policyVersion), seeder: seeder.map { String($0) },
                          schedule: "\(trainer.settings.schedule)", architecture: c.architecture.rawValue, layers: c.layers,
                          hiddenSize: c.dim, vocabSize: c.vocabSize, tensors: trainer.optimizer.moments.count,
                          savedAt: ISO8601DateFormatter().string(from: Date()),
                          reference: trainer.referenceIsBase ? "base" : "anchored")
        var bytes = 0
        try DurableFile.replaceDirectory(path) { directory in
            if let adapters = trainer.decoder.adapters {
                try SafetensorsWriter.write(adapterTensors(adapters), to: directory + "/adapter_model.safetensors")
            } else {
                try SafetensorsWriter.write(trainer.decoder.weights.huggingFaceTensors(config: c),
                                            metadata: ["format": "pt"], to: directory + "/model.safetensors")
            }
            try SafetensorsWriter.write(moments, to: directory + "/optimizer.safetensors")
            if let reference = trainer.referenceAdapters {
                try FileManager.default.createDirectory(atPath: directory + "/reference", withIntermediateDirectories: false)
                try SafetensorsWriter.write(adapterTensors(reference), to: directory + "/reference/adapter_model.safetensors")
            } else if let reference = trainer.referenceDecoder {
                try FileManager.default.createDirectory(atPath: directory + "/reference", withIntermediateDirectories: false)
                try SafetensorsWriter.write(reference.weights.huggingFaceTensors(config: c), metadata: ["format": "pt"],
                                            to: directory + "/reference/model.safetensors")
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try DurableFile.write(try encoder.encode(state), to: directory + "/trainer.json")
            for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
                bytes += (try FileManager.default.attributesOfItem(atPath: directory + "/" + name)[.size] as? Int) ?? 0
            }
        }
        return bytes
    }

    /// The adapters as PEFT stores them: lora_A [rank × in], lora_B [out × rank].
    public static func adapterTensors(_ adapters: LoRAAdapters) -> [SafetensorsWriter.Tensor] {
        var tensors: [SafetensorsWriter.Tensor] = []
        adapters.forEachTensor { name, pair, matrix in
            let shape = matrix == \LoRAPair.a ? [adapters.settings.rank, pair.inDim] : [pair.outDim, adapters.settings.rank]
            tensors.append(.init(name: name, shape: shape, values: pair[keyPath: matrix]))
        }
        return tensors
    }

    /// Reads `path` (or what a crash mid-save left as its predecessor), checks it against the trainer, and
    /// only then restores weights or adapters and optimiser state into it. Returns the saved state
    /// (policy version and seed stream are the caller's to restore).
    public static func load(from path: String, into trainer: Trainer) throws -> State {
        let directory = DurableFile.resolve(path)
        let stateData: Data
        do {
            stateData = try Data(contentsOf: URL(fileURLWithPath: directory + "/trainer.json"))
        } catch {
            throw LoadError("\(path) is not a checkpoint: cannot read trainer.json (\(error.localizedDescription))")
        }
        let state: State
        do {
            state = try JSONDecoder().decode(State.self, from: stateData)
        } catch {
            throw LoadError("\(path)/trainer.json: \(error)")
        }
        let c = trainer.decoder.config
        guard state.format == 1 else { throw LoadError("\(path): checkpoint format \(state.format), this recr1d reads 1") }
        guard state.architecture == c.architecture.rawValue, state.layers == c.layers, state.hiddenSize == c.dim,
              state.vocabSize == c.vocabSize else {
            throw LoadError("\(path) holds a \(state.architecture) with \(state.layers) layers × \(state.hiddenSize); "
                            + "the policy is a \(c.architecture.rawValue) with \(c.layers) layers × \(c.dim)")
        }
        guard state.mode == trainer.mode, state.lora == trainer.settings.lora else {
            throw LoadError("\(path) was trained with \(describe(state.mode, state.lora)); recr1d is set up for "
                            + "\(describe(trainer.mode, trainer.settings.lora)) (training_mode, lora_rank, lora_alpha, lora_targets)")
        }
        guard UInt64(state.policyVersion) != nil, state.seeder.count == 4, state.seeder.allSatisfy({ UInt64($0) != nil }),
              state.step >= 0 else {
            throw LoadError("\(path)/trainer.json: bad step, policy_version or seeder")
        }

        // Read everything first.
        let optimizer: SafetensorsFile
        do {
            optimizer = try SafetensorsFile(path: directory + "/optimizer.safetensors")
        } catch {
            throw LoadError("\(path): \(error)")
        }
        var moments: [AdamWMoments] = []
        for i in 0..<state.tensors {
            do {
                var m = AdamWMoments(count: 0)
                m.m = try optimizer.floats("m.\(i)")
                m.v = try optimizer.floats("v.\(i)")
                moments.append(m)
            } catch {
                throw LoadError("\(path)/optimizer.safetensors: \(error)")
            }
        }
        let anchored = state.reference == "anchored"
        var sizes: [Int] = []
        if let adapters = trainer.decoder.adapters {
            let values = try readAdapters("adapter_model.safetensors", in: directory, like: adapters, path: path)
            let reference = anchored ? LoRAAdapters(zerosLike: adapters) : nil
            let referenceValues = try reference.map { try readAdapters("reference/adapter_model.safetensors", in: directory, like: $0, path: path) }
            sizes = values.map { $0.2.count }
            try checkMoments(moments, sizes: sizes, path: path, step: state.step)
            for (pair, matrix, tensor) in values + (referenceValues ?? []) {
                var target = pair
                target[keyPath: matrix] = tensor
            }
            trainer.restoreReference(adapters: reference, weights: nil)
        } else {
            let weights: ModelWeights
            var reference: ModelWeights?
            do {
                weights = try ModelWeights(safetensors: try SafetensorsSet(directory: directory), config: c)
                if anchored {
                    reference = try ModelWeights(safetensors: try SafetensorsSet(directory: directory + "/reference"), config: c)
                }
            } catch {
                throw LoadError("\(path): \(error)")
            }
            sizes = weights.parameterSizes
            try checkMoments(moments, sizes: sizes, path: path, step: state.step)
            trainer.decoder.updateWeights { $0 = weights }
            trainer.restoreReference(adapters: nil, weights: reference)
        }
        trainer.optimizer.restore(step: state.step, moments: moments)
        return state
    }

    /// Every tensor of the file `name` that `adapters` has, checked against its shape, paired with where it goes.
    private static func readAdapters(_ name: String, in directory: String, like adapters: LoRAAdapters, path: String) throws
        -> [(LoRAPair, WritableKeyPath<LoRAPair, [Float]>, [Float])] {
        let tensors: SafetensorsFile
        do {
            tensors = try SafetensorsFile(path: directory + "/" + name)
        } catch {
            throw LoadError("\(path): \(error)")
        }
        var values: [(LoRAPair, WritableKeyPath<LoRAPair, [Float]>, [Float])] = []
        try adapters.forEachTensor { tensor, pair, matrix in
            guard let info = tensors.tensors[tensor] else { throw LoadError("\(path)/\(name): missing tensor '\(tensor)'") }
            guard info.count == pair[keyPath: matrix].count else {
                throw LoadError("\(path)/\(name): '\(tensor)' has shape \(info.shape)")
            }
            values.append((pair, matrix, try tensors.floats(tensor)))
        }
        return values
    }

    private static func checkMoments(_ moments: [AdamWMoments], sizes: [Int], path: String, step: Int) throws {
        if moments.isEmpty && step == 0 { return }  // saved before the first step
        guard moments.count == sizes.count, zip(moments, sizes).allSatisfy({ $0.m.count == $1 && $0.v.count == $1 }) else {
            throw LoadError("\(path)/optimizer.safetensors: \(moments.count) moment tensors do not fit the \(sizes.count) trainable tensors")
        }
    }

    private static func describe(_ mode: String, _ lora: LoRASettings?) -> String {
        guard let lora else { return "full fine-tuning" }
        return "LoRA rank \(lora.rank), alpha \(lora.alpha), targets \(lora.targets.map(\.rawValue).joined(separator: ","))"
    }
}
