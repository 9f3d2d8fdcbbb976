import ArgumentParser
import Foundation
import RecR1Service

/// `recr1d config`: the settings `recr1d serve` would run with (defaults, then --config, then flags), as
/// TOML; with --schema, every setting's key, flag, type, range, default and help as JSON, for tools (the
/// Python recipes check their settings against it); with --schema --job, the keys of a job file.
struct Config: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the resolved settings (TOML), or with --schema every setting's type, range and default (JSON).",
        usage: "recr1d config [--schema] [--config <file>] [--<setting> <value> ...]")

    @Flag(help: "Print the schema of the settings as JSON instead.")
    var schema = false

    @Flag(help: "With --schema: the keys of a job file (recr1d train, StartJob) instead of the server's settings.")
    var job = false

    @OptionGroup var serve: Serve

    func validate() throws {
        if job && !schema { throw ValidationError("--job goes with --schema") }
    }

    func run() throws {
        if schema {
            let entries = job ? JobConfig.schema() : ServerConfig.schema()
            let data = try JSONSerialization.data(withJSONObject: entries, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        let config = try serve.resolvedConfig()
        for setting in ServerConfig.settings {
            print("\(setting.key) = \(setting.value(in: config).toml)")
        }
    }
}
