import Foundation
import Logging
import XCTest

@testable import RecR1Learning
@testable import RecR1Model
@testable import RecR1Service

final class ConfigTests: XCTestCase {
    override class func setUp() { TestLogging.quiet }

    private func write(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "recr1-config-\(UUID().uuidString).toml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testTCPWithoutHostBindsToLoopback() throws {
        XCTAssertEqual(try ListenAddress(parsing: "tcp://:5555").url, "tcp://127.0.0.1:5555")
        XCTAssertEqual(try ListenAddress(parsing: "tcp://*:5555").url, "tcp://127.0.0.1:5555")
        XCTAssertEqual(try ListenAddress(parsing: "tcp://0.0.0.0:80").url, "tcp://0.0.0.0:80")
        XCTAssertEqual(try ListenAddress(parsing: "tcp://[::1]:9000").url, "tcp://[::1]:9000")
        XCTAssertEqual(try ListenAddress(parsing: "ipc:///run/x.sock").kind, .ipc(path: "/run/x.sock"))
    }

    func testBadAddressesAreRefusedByName() {
        XCTAssertEqual(try ListenAddress(parsing: "tls+tcp://:5").url, "tls+tcp://127.0.0.1:5", "loopback unless told")
        for bad in ["tcp://host", "tcp://:0", "tcp://:70000", "ipc://relative.sock", "udp://:1", "tls+tcp://host"] {
            XCTAssertThrowsError(try ListenAddress(parsing: bad), bad) { error in
                XCTAssertEqual((error as? ConfigError)?.key, "listen")
            }
        }
    }

    func testDefaultIPCPath() {
        XCTAssertEqual(ListenAddress.defaultIPCPath(environment: ["XDG_RUNTIME_DIR": "/run/user/7"]),
                       "/run/user/7/recr1d.sock")
        XCTAssertEqual(ListenAddress.defaultIPCPath(environment: [:]), "/tmp/recr1d-\(getuid())/recr1d.sock")
    }

    func testFileSettingsApply() throws {
        let path = try write("""
            listen = ["tcp://:7000", "ipc:///tmp/a.sock"]
            workers = 9
            max_message_bytes = 65536
            max_new_tokens = 100
            log_level = "debug"
            state_dir = "/var/lib/recr1d"
            """)
        var config = ServerConfig()
        try config.merge(file: path)
        XCTAssertEqual(config.workers, 9)
        XCTAssertEqual(config.maxMessageBytes, 65536)
        XCTAssertEqual(config.maxNewTokens, 100)
        XCTAssertEqual(config.logLevel, .debug)
        XCTAssertEqual(config.stateDir, "/var/lib/recr1d")
        XCTAssertEqual(try config.listenAddresses().map(\.url), ["tcp://127.0.0.1:7000", "ipc:///tmp/a.sock"])
        XCTAssertEqual(config.maxSamplesPerPrompt, ServerConfig().maxSamplesPerPrompt, "unset keys keep defaults")
    }

    func testFileErrorsNameTheKey() throws {
        let cases: [(String, String)] = [
            ("worker = 3", "worker"),                 // misspelt
            ("workers = \"four\"", "workers"),        // wrong type
            ("workers = 0", "workers"),               // out of range
            ("log_level = \"loud\"", "log_level"),
            ("listen = [1, 2]", "listen"),
        ]
        for (text, key) in cases {
            var config = ServerConfig()
            XCTAssertThrowsError(try config.merge(file: try write(text)), text) { error in
                XCTAssertEqual((error as? ConfigError)?.key, key, "\(error)")
            }
        }
        var config = ServerConfig()
        XCTAssertThrowsError(try config.merge(file: try write("workers = [")))  // not TOML
        XCTAssertThrowsError(try config.merge(file: "/nonexistent/recr1d.toml"))
    }

    func testTrainingSettings() throws {
        let path = try write("""
            training_mode = "lora"
            lora_rank = 8
            lora_alpha = 16
            lora_targets = ["q_proj", "v"]
            learning_rate = 2e-4
            lr_schedule = "cosine"
            warmup_steps = 10
            total_steps = 100
            min_lr_ratio = 0.1
            weight_decay = 0.01
            max_grad_norm = 0.5
            micro_batch_tokens = 512
            seed = 42
            rollout_store_count = 10
            """)
        var config = ServerConfig()
        try config.merge(file: path)
        let settings = try config.training.trainerSettings()
        XCTAssertEqual(settings.lora, LoRASettings(rank: 8, alpha: 16, targets: [.q, .v]))
        XCTAssertEqual(settings.schedule, .warmupCosine(2e-4, warmup: 10, total: 100, minimum: 0.1))
        XCTAssertEqual(settings.adamW.weightDecay, 0.01)
        XCTAssertEqual(settings.maxGradientNorm, 0.5)
        XCTAssertEqual(settings.maxTokensPerMicroBatch, 512)
        XCTAssertEqual(settings.seed, 42)
        XCTAssertEqual(config.training.rolloutStoreCount, 10)

        var full = TrainingConfig()
        full.mode = "full"
        let fullSettings = try full.trainerSettings()
        XCTAssertNil(fullSettings.lora)
        XCTAssertEqual(fullSettings.schedule, .constant(1e-5), "full fine-tuning's default learning rate")

        for (text, key) in [("training_mode = \"half\"", "training_mode"), ("lora_targets = [\"mlp\"]", "lora_targets"),
                            ("lr_schedule = \"steps\"", "lr_schedule"), ("lora_rank = 0", "lora_rank"),
                            ("learning_rate = \"fast\"", "learning_rate"), ("micro_batch_tokens = -1", "micro_batch_tokens")] {
            var config = ServerConfig()
            do {
                try config.merge(file: try write(text))
                _ = try config.training.trainerSettings()
                XCTFail("\(text) was accepted")
            } catch {
                XCTAssertEqual((error as? ConfigError)?.key, key, "\(error)")
            }
        }
    }

    func testTokenFile() throws {
        var config = ServerConfig()
        XCTAssertNil(try config.authToken())
        config.tokenFile = try write("  tok-123\n")
        XCTAssertEqual(try config.authToken(), "tok-123")
        config.tokenFile = try write("\n")
        XCTAssertThrowsError(try config.authToken())
    }

    /// The flags and the file share one declaration: the same ranges, the same choices, the same keys.
    func testFlagsApplyWithTheFilesRanges() throws {
        var config = ServerConfig()
        try config.merge(file: try write("workers = 9\nlisten = [\"ipc:///tmp/file.sock\"]\nlora_rank = 4"))
        let rest = try config.apply(flags: ["job.toml", "--workers", "3", "--listen=tcp://:7000", "--listen", "ipc:///tmp/b.sock",
                                            "--lora-alpha", "8", "--log-level", "debug", "--allow-dir", "/srv/a", "--seed", "7"])
        XCTAssertEqual(rest, ["job.toml"], "what is not a setting is handed back")
        XCTAssertEqual(config.workers, 3, "a flag overrides the file")
        XCTAssertEqual(config.listen, ["tcp://:7000", "ipc:///tmp/b.sock"], "repeated flags collect, and replace the file's list")
        XCTAssertEqual(config.training.loraRank, 4, "the file's settings stay where no flag is given")
        XCTAssertEqual(config.training.loraAlpha, 8)
        XCTAssertEqual(config.logLevel, .debug)
        XCTAssertEqual(config.allowedDirs, ["/srv/a"])
        XCTAssertEqual(config.training.seed, 7)

        let cases: [([String], String)] = [
            (["--workers", "0"], "--workers"),                    // the file's range: 1...256
            (["--workers", "four"], "--workers"),
            (["--training-mode", "half"], "--training-mode"),     // a choice
            (["--lora-alpha", "nan"], "--lora-alpha"),
            (["--wrokers", "2"], "--wrokers"),                    // misspelt
            (["--model"], "--model"),                             // no value
        ]
        for (flags, key) in cases {
            var config = ServerConfig()
            XCTAssertThrowsError(try config.apply(flags: flags), "\(flags)") { error in
                XCTAssertEqual((error as? ConfigError)?.key, key, "\(error)")
            }
        }
        // The same out-of-range value in the file names the key.
        var file = ServerConfig()
        XCTAssertThrowsError(try file.merge(file: try write("training_mode = \"half\""))) { error in
            XCTAssertEqual((error as? ConfigError)?.key, "training_mode")
        }
    }

    /// Every setting is in the schema once, with a type, a default that is the config's own, and help; a
    /// value written from the schema's defaults reads back as the default config.
    func testSchemaDescribesEverySetting() throws {
        let schema = ServerConfig.schema()
        let keys = schema.compactMap { $0["key"] as? String }
        XCTAssertEqual(keys.count, ServerConfig.settings.count)
        XCTAssertEqual(Set(keys).count, keys.count, "each key once")
        XCTAssertEqual(Set(schema.compactMap { $0["flag"] as? String }).count, keys.count, "each flag once")
        for entry in schema {
            XCTAssertNotNil(entry["type"], "\(entry)")
            XCTAssertFalse((entry["help"] as? String ?? "").isEmpty, "\(entry)")
        }
        let workers = try XCTUnwrap(schema.first { $0["key"] as? String == "workers" })
        XCTAssertEqual(workers["default"] as? Int, ServerConfig().workers)
        XCTAssertEqual(workers["minimum"] as? Int, 1)
        XCTAssertEqual(workers["maximum"] as? Int, 256)
        XCTAssertEqual(schema.first { $0["key"] as? String == "lr_schedule" }?["choices"] as? [String], ["constant", "linear", "cosine"])
        XCTAssertEqual(schema.first { $0["key"] as? String == "allowed_dirs" }?["flag"] as? String, "--allow-dir")
        XCTAssertNoThrow(try JSONSerialization.data(withJSONObject: schema))
        XCTAssertTrue(ServerConfig.settingsHelp.contains("--max-new-tokens <1...1000000>"))
    }
}
