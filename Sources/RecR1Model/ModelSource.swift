import Foundation
import RecR1Formats

/// Where a model comes from: a GGUF file, or a Hugging Face directory (config.json, safetensors,
/// tokenizer.json). Opened once; the decoder and the tokenizer both read from it.
public enum ModelSource {
    case gguf(GGUFFile)
    case huggingFace(directory: String, config: ModelConfig, tensors: SafetensorsSet)

    public static func open(_ path: String) throws -> ModelSource {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw FormatError((path as NSString).lastPathComponent, "no such file or directory")
        }
        if isDirectory.boolValue {
            // The config first: its errors say more than a missing weight file would.
            let config = try ModelConfig(configJSON: path + "/config.json")
            return .huggingFace(directory: path, config: config, tensors: try SafetensorsSet(directory: path))
        }
        return .gguf(try GGUFFile(path: path))
    }

    /// The element types the file stores its tensors in, e.g. "F32+Q4_1+Q8_0".
    public var storedTypes: String {
        switch self {
        case .gguf(let gguf): return Set(gguf.tensorInfos.map(\.type.description)).sorted().joined(separator: "+")
        case .huggingFace(_, _, let tensors): return Set(tensors.names.compactMap { tensors.info($0)?.dtype }).sorted().joined(separator: "+")
        }
    }
}
