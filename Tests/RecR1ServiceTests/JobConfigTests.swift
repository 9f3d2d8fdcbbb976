import Foundation
import XCTest

@testable import RecR1Learning
@testable import RecR1Service

/// The job file's reader comes from one table (JobConfig.settings, JobConfig.pluginSettings): defaults are
/// the losses' own, every key reads into its field, bad values name the key, the schema lists them all.
final class JobConfigTests: XCTestCase {
    private let plugin = "[[plugins]]\nname = \"p\"\naddresses = [\"ipc:///tmp/p.sock\"]\n"

    private func job(_ body: String, plugins: String? = nil) throws -> JobConfig {
        try JobConfig(text: "name = \"j\"\nprompts = \"train.jsonl\"\n" + body + "\n" + (plugins ?? plugin),
                      origin: "job.toml", baseDirectory: "/srv/jobs", stateDir: "/srv/state")
    }

    func testDefaultsAreTheLossesOwn() throws {
        let config = try job("steps = 3")
        XCTAssertEqual(config.grpo, GRPOSettings(), "a job that sets nothing trains as an Update that sets nothing")
        XCTAssertEqual(config.dpo, DPOSettings())
        XCTAssertEqual(config.steps, 3)
        XCTAssertEqual(config.prompts, "/srv/jobs/train.jsonl")
        XCTAssertEqual(config.outputDir, "/srv/state/jobs/j")
        XCTAssertEqual(config.plugins, [RewardClient.Settings(name: "p", addresses: ["ipc:///tmp/p.sock"])])
    }

    func testEveryKeyReadsIntoItsField() throws {
        let config = try job("""
            algorithm = "dpo"
            steps = 7
            prompts_per_step = 2
            samples_per_prompt = 5
            temperature = 0.7
            top_p = 0.9
            top_k = 40
            max_new_tokens = 64
            stop_strings = ["</a>"]
            learning_rate = 3e-4
            beta = 0
            kl_estimator = "k1"
            epsilon_low = 0.1
            objective = "gspo"
            advantage_scaling = "none"
            entropy_coefficient = 0.01
            dpo_beta = 0.5
            dpo_loss = "ipo"
            checkpoint_every = 2
            max_failed_fraction = 0.25
            eval_every = 3
            eval_limit = 8
            seed = 11
            """, plugins: plugin + "weight = -2\ntimeout_ms = 500\nretries = 0\nbackoff_ms = 10\nbatch_size = 4\n")
        XCTAssertEqual(config.algorithm, .dpo)
        XCTAssertEqual([config.steps, config.promptsPerStep, config.samplesPerPrompt, config.topK, config.maxNewTokens], [7, 2, 5, 40, 64])
        XCTAssertEqual([config.temperature, config.topP, config.learningRate], [0.7, 0.9, 3e-4])
        XCTAssertEqual(config.stopStrings, ["</a>"])
        XCTAssertEqual(config.grpo.beta, 0)
        XCTAssertEqual(config.grpo.kl, .k1)
        XCTAssertEqual(config.grpo.epsilonLow, 0.1)
        XCTAssertEqual(config.grpo.epsilonHigh, 0.1, "the upper clip is the lower one unless given, as in Update")
        XCTAssertEqual(config.grpo.objective, .clippedSequence)
        XCTAssertEqual(config.grpo.scaling, .none)
        XCTAssertEqual(config.grpo.entropyCoefficient, 0.01)
        XCTAssertEqual(config.dpo.beta, 0.5)
        XCTAssertEqual(config.dpo.kind, .ipo)
        XCTAssertEqual([config.checkpointEvery, config.evalEvery, config.evalLimit], [2, 3, 8])
        XCTAssertEqual(config.maxFailedFraction, 0.25)
        XCTAssertEqual(config.seed, 11)
        let p = try XCTUnwrap(config.plugins.first)
        XCTAssertEqual(p.weight, -2)
        XCTAssertEqual([p.timeoutMs, p.retries, p.backoffMs, p.batchSize], [500, 0, 10, 4])
        XCTAssertEqual(try job("steps = 1\nepsilon_low = 0.1\nepsilon_high = 0.28").grpo.epsilonHigh, 0.28)
    }

    func testBadValuesNameTheKey() {
        let cases: [(String, String?, String)] = [
            ("", nil, "steps"),
            ("steps = 0", nil, "steps"),
            ("steps = 1\nobjective = \"ppo\"", nil, "objective"),
            ("steps = 1\ntemperature = \"hot\"", nil, "temperature"),
            ("steps = 1\nepsilon_low = 2", nil, "epsilon_low"),
            ("steps = 1\nadvantage_scaling = \"rank\"", nil, "advantage_scaling"),
            ("steps = 1\nsamples_per_prompt = 1", nil, "samples_per_prompt"),
            ("steps = 1\nbetta = 0", nil, "betta"),
            ("steps = 1", plugin + "timeout_ms = 0\n", "plugins[0].timeout_ms"),
            ("steps = 1", plugin + "weight = \"x\"\n", "plugins[0].weight"),
            ("steps = 1", plugin + "colour = 1\n", "plugins[0].colour"),
            ("steps = 1", "[[plugins]]\nname = \"p\"\n", "plugins[0].addresses"),
            ("steps = 1", "", "plugins"),
        ]
        for (body, plugins, key) in cases {
            XCTAssertThrowsError(try job(body, plugins: plugins), body) { error in
                XCTAssertEqual((error as? ConfigError)?.key, key, "\(body) \(plugins ?? ""): \(error)")
            }
        }
    }

    /// The schema has every key the reader accepts, once, with a type and help; the table's defaults are
    /// a JobConfig's.
    func testSchemaListsEveryKey() throws {
        let schema = JobConfig.schema()
        let keys = schema.compactMap { $0["key"] as? String }
        XCTAssertEqual(Set(keys).count, keys.count)
        for setting in JobConfig.settings { XCTAssertTrue(keys.contains(setting.key), setting.key) }
        for setting in JobConfig.pluginSettings { XCTAssertTrue(keys.contains("plugins[]." + setting.key), setting.key) }
        for required in ["name", "prompts", "plugins[].name", "plugins[].addresses"] { XCTAssertTrue(keys.contains(required), required) }
        for entry in schema {
            XCTAssertNotNil(entry["type"] as? String, "\(entry)")
            XCTAssertFalse((entry["help"] as? String ?? "").isEmpty, "\(entry)")
        }
        XCTAssertEqual(schema.first { $0["key"] as? String == "beta" }?["default"] as? Double, Double("\(GRPOSettings().beta)"))
        XCTAssertEqual(schema.first { $0["key"] as? String == "objective" }?["choices"] as? [String], ["grpo", "gspo", "cispo"])
        XCTAssertNoThrow(try JSONSerialization.data(withJSONObject: schema))
        // A job file written from the schema's defaults reads back as the default job.
        var text = "name = \"j\"\nprompts = \"train.jsonl\"\n"
        for setting in JobConfig.settings where setting.key != "steps" {
            text += "\(setting.key) = \(setting.value(in: JobConfig()).toml)\n"
        }
        let written = try JobConfig(text: text + "steps = 3\n" + plugin, origin: "job.toml", baseDirectory: "/srv/jobs", stateDir: "/srv/state")
        XCTAssertEqual(written, try job("steps = 3"))
    }
}
