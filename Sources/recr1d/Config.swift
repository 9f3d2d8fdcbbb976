import ArgumentParser
import Foundation
import RecR1Service

/// `recr1d config`: the settings `recr1d serve` would run with (defaults, then --config, then flags), as
/// TOML; with --schema, every setting's key, flag, type, range, default and help as JSON, for tools (the
/// Python recipes check their settings against it).
struct Config: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the resolved settings (TOML), or with --schema every setting's type, range and default (JSON).",
        usage: "recr1d config [--schema] [--config <file>] [--<setting> <value> ...]")

    @Flag(help: "Print the schema of the settings as JSON instead.")
    var schema = false

    @OptionGroup var serve: Serve

    func run() throws {
        if schema {
            let data = try JSONSerialization.data(withJSONObject: ServerConfig.schema(), options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        let config = try serve.resolvedConfig()
        for entry in ServerConfig.schema(defaults: config) {
            guard let key = entry["key"] as? String else { continue }
            print("\(key) = \(Self.toml(entry["default"] ?? ""))")
        }
    }

    private static func toml(_ value: Any) -> String {
        switch value {
        case let v as Int: return String(v)
        case let v as Double: return String(v)
        case let v as [String]: return "[" + v.map(quoted).joined(separator: ", ") + "]"
        case let v as String: return quoted(v)
        default: return quoted("\(value)")
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
