import Foundation

/// A safetensors file: an 8-byte little-endian header length, a JSON header mapping tensor names to
/// dtype, shape and byte range, then the data. Opened with a memory map.
public final class SafetensorsFile {
    public struct TensorInfo: Equatable {
        public let name: String
        public let dtype: String       // "F32", "BF16", "F16"
        public let shape: [Int]        // row-major, slowest first
        public let range: Range<Int>   // within the data section
        public var count: Int { shape.reduce(1, *) }
    }

    public let path: String
    public let tensors: [String: TensorInfo]
    private let data: Data
    private let dataStart: Int

    private static let elementBytes = ["F32": 4, "BF16": 2, "F16": 2]

    public init(path: String) throws {
        self.path = path
        let file = (path as NSString).lastPathComponent
        data = try mapFile(path)
        guard data.count >= 8 else { throw FormatError(file, "truncated: no header length") }
        let headerLength = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength <= UInt64(data.count - 8) else {
            throw FormatError(file, "truncated: the header claims \(headerLength) bytes, the file has \(data.count - 8)")
        }
        dataStart = 8 + Int(headerLength)
        let header: [String: Any]
        do {
            header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<dataStart)) as? [String: Any] ?? [:]
        } catch {
            throw FormatError(file, "the header is not JSON: \(error.localizedDescription)")
        }
        var tensors: [String: TensorInfo] = [:]
        for (name, value) in header where name != "__metadata__" {
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2
            else { throw FormatError(file, "tensor '\(name)': header entry needs dtype, shape and data_offsets") }
            guard let size = Self.elementBytes[dtype] else {
                throw FormatError(file, "tensor '\(name)' has dtype \(dtype); recr1 reads F32, BF16 and F16")
            }
            // The byte size, refusing negative dimensions and sizes that overflow (a hostile header must not trap).
            var bytes: Int? = shape.allSatisfy { $0 >= 0 } ? size : nil
            for dimension in shape {
                guard let b = bytes else { break }
                let (product, overflow) = b.multipliedReportingOverflow(by: dimension)
                bytes = overflow ? nil : product
            }
            guard let bytes else {
                throw FormatError(file, "tensor '\(name)': shape \(shape) has no valid size")
            }
            guard offsets[0] >= 0, offsets[1] >= offsets[0], offsets[1] - offsets[0] == bytes else {
                throw FormatError(file, "tensor '\(name)': data_offsets \(offsets) do not hold \(shape) \(dtype)")
            }
            guard offsets[1] <= data.count - dataStart else {  // (not dataStart + offsets[1], which can overflow)
                throw FormatError(file, "truncated: tensor '\(name)' needs data bytes up to \(offsets[1]), the data section has \(data.count - dataStart)")
            }
            tensors[name] = TensorInfo(name: name, dtype: dtype, shape: shape, range: offsets[0]..<offsets[1])
        }
        self.tensors = tensors
    }

    /// The tensor's values as Float32, row-major.
    public func floats(_ name: String) throws -> [Float] {
        guard let info = tensors[name] else {
            throw FormatError((path as NSString).lastPathComponent, "missing tensor '\(name)'")
        }
        let type: GGMLType = info.dtype == "F32" ? .f32 : info.dtype == "BF16" ? .bf16 : .f16
        return data.withUnsafeBytes { raw in
            let bytes = UnsafeRawBufferPointer(rebasing: raw[(dataStart + info.range.lowerBound)..<(dataStart + info.range.upperBound)])
            return [Float](unsafeUninitializedCapacity: info.count) { out, initialized in
                Dequantize.run(type, from: bytes, into: out.baseAddress!, count: info.count)
                initialized = info.count
            }
        }
    }
}

/// The safetensors of a Hugging Face directory: `model.safetensors`, or shards listed by
/// `model.safetensors.index.json`.
public final class SafetensorsSet {
    public let directory: String
    private var files: [String: SafetensorsFile] = [:]
    private var fileOf: [String: String] = [:]

    public init(directory: String) throws {
        self.directory = directory
        let index = directory + "/model.safetensors.index.json"
        if FileManager.default.fileExists(atPath: index) {
            let json: [String: Any]
            do {
                json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: index))) as? [String: Any] ?? [:]
            } catch {
                throw FormatError("model.safetensors.index.json", "cannot read JSON: \(error.localizedDescription)")
            }
            guard let map = json["weight_map"] as? [String: String] else {
                throw FormatError("model.safetensors.index.json", "missing 'weight_map'")
            }
            fileOf = map
            for shard in Set(map.values) { files[shard] = try SafetensorsFile(path: directory + "/" + shard) }
        } else {
            let single = try SafetensorsFile(path: directory + "/model.safetensors")
            files["model.safetensors"] = single
            for name in single.tensors.keys { fileOf[name] = "model.safetensors" }
        }
    }

    public var names: [String] { fileOf.keys.sorted() }

    public func info(_ name: String) -> SafetensorsFile.TensorInfo? {
        fileOf[name].flatMap { files[$0]?.tensors[name] }
    }

    public func floats(_ name: String) throws -> [Float] {
        guard let shard = fileOf[name], let file = files[shard] else {
            throw FormatError((directory as NSString).lastPathComponent, "missing tensor '\(name)'")
        }
        return try file.floats(name)
    }
}
