import Foundation
import RecR1Kernels
import XCTest

@testable import RecR1Formats
@testable import RecR1Learning
@testable import RecR1Model
@testable import RecR1Policy
@testable import RecR1Tokenizer

/// Files recr1 writes: safetensors, durable directories, tokenizer.json, training checkpoints.
final class ExportTests: EngineTestCase {

    func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "recr1-export-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testSafetensorsWriterRoundTrips() throws {
        let directory = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/t.safetensors"
        try SafetensorsWriter.write([SafetensorsWriter.Tensor(name: "a", shape: [2, 3], values: [1, 2, 3, 4, 5, -6]),
                                     SafetensorsWriter.Tensor(name: "b.weight", shape: [1], values: [Float.pi])],
                                    metadata: ["format": "pt"], to: path)
        let file = try SafetensorsFile(path: path)
        XCTAssertEqual(file.tensors["a"]?.shape, [2, 3])
        XCTAssertEqual(try file.floats("a"), [1, 2, 3, 4, 5, -6])
        XCTAssertEqual(try file.floats("b.weight"), [Float.pi])
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let headerLength = data.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        XCTAssertEqual((8 + headerLength) % 8, 0, "the data starts 8-byte aligned")
    }

    func testReplaceDirectoryKeepsTheOldOneUntilTheNewOneIsInPlace() throws {
        let path = temporaryDirectory() + "/ck"
        try DurableFile.replaceDirectory(path) { try DurableFile.write(Data("one".utf8), to: $0 + "/f") }
        XCTAssertEqual(try String(contentsOfFile: path + "/f", encoding: .utf8), "one")
        // A fill that fails leaves the old directory as it was, and no temporary behind.
        struct Boom: Error {}
        XCTAssertThrowsError(try DurableFile.replaceDirectory(path) { _ in throw Boom() })
        XCTAssertEqual(try String(contentsOfFile: path + "/f", encoding: .utf8), "one")
        let parent = (path as NSString).deletingLastPathComponent
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: parent), ["ck"])
        try DurableFile.replaceDirectory(path) { try DurableFile.write(Data("two".utf8), to: $0 + "/f") }
        XCTAssertEqual(try String(contentsOfFile: path + "/f", encoding: .utf8), "two")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".previous"))
        // A crash between the two renames: only `.previous` exists, and `resolve` finds it.
        try FileManager.default.moveItem(atPath: path, toPath: path + ".previous")
        XCTAssertEqual(DurableFile.resolve(path), path + ".previous")
    }

    func testTokenizerJSONExportRoundTripsTheSmolLM2Tokenizer() throws {
        let policy = try Policy.load(path: DefaultModel.locate())
        let directory = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try policy.tokenizer.spec.tokenizerJSON().write(to: URL(fileURLWithPath: directory + "/tokenizer.json"))
        try policy.tokenizer.spec.tokenizerConfigJSON(contextLength: 8192).write(to: URL(fileURLWithPath: directory + "/tokenizer_config.json"))
        let reloaded = try Tokenizer(tokenizerJSON: directory + "/tokenizer.json")
        XCTAssertEqual(reloaded.vocabularySize, policy.tokenizer.vocabularySize)
        XCTAssertEqual(reloaded.preTokenizer, .smollm)
        XCTAssertEqual(reloaded.eosTokenID, policy.tokenizer.eosTokenID)
        XCTAssertEqual(reloaded.chatTemplateSource, policy.tokenizer.chatTemplateSource)
        let data = try Data(contentsOf: ParityTests.golden.appendingPathComponent("tokenizer-smollm2.json"))
        let cases = try XCTUnwrap((JSONSerialization.jsonObject(with: data) as? [String: Any])?["cases"] as? [[String: Any]])
        XCTAssertGreaterThan(cases.count, 50)
        for item in cases {
            let text = try XCTUnwrap(item["text"] as? String)
            XCTAssertEqual(reloaded.encode(text, addSpecialTokens: false), policy.tokenizer.encode(text, addSpecialTokens: false), text)
        }
    }

    func testCheckpointRestoresTrainingBitForBit() throws {
        for lora in [LoRASettings(rank: 4, alpha: 8), nil] {
            var settings = TrainerSettings()
            settings.lora = lora
            settings.schedule = .warmupCosine(0.01, warmup: 2, total: 10, minimum: 0.1)
            settings.seed = 3
            let batch = TrainingBatch(prompts: [[4, 9], [8]], completions: [[12, 30, 2], [8, 40, 3, 11]])
            func step(_ trainer: Trainer) {
                _ = trainer.sft(prompts: [[4, 9], [8]], completions: [[12, 30, 2], [8, 40, 3, 11]])
            }
            let a = Trainer(decoder: DecoderTests.randomModel(seed: 31, qkvBias: true, tied: false), settings: settings)
            step(a); step(a)
            let path = temporaryDirectory() + "/ck"
            try Checkpoint.save(a, policyVersion: 2, seeder: [1, 2, 3, 4], to: path)
            step(a); step(a)

            let b = Trainer(decoder: DecoderTests.randomModel(seed: 31, qkvBias: true, tied: false), settings: settings)
            let state = try Checkpoint.load(from: path, into: b)
            XCTAssertEqual(state.step, 2)
            XCTAssertEqual(state.seeder, ["1", "2", "3", "4"])
            step(b); step(b)
            XCTAssertEqual(b.policyLogprobs(batch), a.policyLogprobs(batch), "mode \(lora == nil ? "full" : "lora")")
            XCTAssertEqual(b.optimizer.step, 4)

            // Another mode's checkpoint is refused, and the trainer stays as it was.
            var other = settings
            other.lora = lora == nil ? LoRASettings(rank: 4, alpha: 8) : nil
            let c = Trainer(decoder: DecoderTests.randomModel(seed: 31, qkvBias: true, tied: false), settings: other)
            let before = c.policyLogprobs(batch)
            XCTAssertThrowsError(try Checkpoint.load(from: path, into: c))
            XCTAssertEqual(c.policyLogprobs(batch), before)
            XCTAssertEqual(c.optimizer.step, 0)
        }
    }

    /// An anchored reference is the policy as it was when anchored, survives a checkpoint, and a checkpoint
    /// saved with the base as reference puts the base back.
    func testAnAnchoredReferenceIsThePolicyAtTheAnchorAndSurvivesACheckpoint() throws {
        for lora in [LoRASettings(rank: 4, alpha: 8), nil] {
            let mode = lora == nil ? "full" : "lora"
            var settings = TrainerSettings()
            settings.lora = lora
            settings.schedule = .constant(0.02)
            let batch = TrainingBatch(prompts: [[4, 9], [8]], completions: [[12, 30, 2], [8, 40, 3, 11]])
            func step(_ trainer: Trainer) {
                XCTAssertTrue(trainer.sft(prompts: [[4, 9], [8]], completions: [[12, 30, 2], [8, 40, 3, 11]]).applied)
            }
            let a = Trainer(decoder: DecoderTests.randomModel(seed: 31, qkvBias: true, tied: false), settings: settings)
            let base = a.referenceLogprobs(batch)
            step(a); step(a)
            let basePath = temporaryDirectory() + "/base-reference"
            try Checkpoint.save(a, policyVersion: 2, seeder: [1, 2, 3, 4], to: basePath)
            XCTAssertTrue(a.referenceIsBase)
            XCTAssertEqual(a.referenceLogprobs(batch), base, "\(mode): before anchoring the reference is the base")

            a.anchorReference()
            let anchored = a.policyLogprobs(batch)
            XCTAssertFalse(a.referenceIsBase)
            XCTAssertEqual(a.referenceLogprobs(batch), anchored, "\(mode): the reference is the policy at the anchor")
            XCTAssertGreaterThan(maxAbsDifference(anchored.flatMap { $0 }, base.flatMap { $0 }), 1e-3)
            step(a)
            XCTAssertGreaterThan(maxAbsDifference(a.policyLogprobs(batch).flatMap { $0 }, anchored.flatMap { $0 }), 1e-4,
                                 "\(mode): the policy moves on")
            XCTAssertEqual(a.referenceLogprobs(batch), anchored, "\(mode): the reference stays at the anchor")
            let anchoredPath = temporaryDirectory() + "/anchored-reference"
            try Checkpoint.save(a, policyVersion: 3, seeder: [1, 2, 3, 4], to: anchoredPath)
            XCTAssertTrue(FileManager.default.fileExists(
                atPath: anchoredPath + (lora == nil ? "/reference/model.safetensors" : "/reference/adapter_model.safetensors")))

            let b = Trainer(decoder: DecoderTests.randomModel(seed: 31, qkvBias: true, tied: false), settings: settings)
            let state = try Checkpoint.load(from: anchoredPath, into: b)
            XCTAssertEqual(state.reference, "anchored")
            XCTAssertEqual(b.referenceLogprobs(batch), anchored, "\(mode): the checkpoint brings its reference back")
            XCTAssertEqual(b.policyLogprobs(batch), a.policyLogprobs(batch))
            _ = try Checkpoint.load(from: basePath, into: b)
            XCTAssertTrue(b.referenceIsBase)
            XCTAssertEqual(b.referenceLogprobs(batch), base, "\(mode): a checkpoint with the base as reference restores it")
        }
    }
}
