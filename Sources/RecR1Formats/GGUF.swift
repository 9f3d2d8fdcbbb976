import Foundation

/// A metadata value of a GGUF file.
public enum GGUFValue: Equatable {
    case uint(UInt64), int(Int64), float(Double), bool(Bool), string(String), array([GGUFValue])

    public var string: String? { if case .string(let s) = self { return s } else { return nil } }
    public var int: Int? {
        switch self {
        case .uint(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .int(let v): return Int(v)
        default: return nil
        }
    }
    public var double: Double? {
        switch self {
        case .float(let v): return v
        case .uint, .int: return int.map(Double.init)
        default: return nil
        }
    }
    public var bool: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var array: [GGUFValue]? { if case .array(let a) = self { return a } else { return nil } }
    public var strings: [String]? { array?.compactMap(\.string) }
    public var ints: [Int]? { array?.compactMap(\.int) }
}

/// The tensor element types recr1 reads (ggml's numbering).
public enum GGMLType: UInt32, CustomStringConvertible {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q8_0 = 8, bf16 = 30

    /// Weights per block and bytes per block.
    public var block: (weights: Int, bytes: Int) {
        switch self {
        case .f32: return (1, 4)
        case .f16, .bf16: return (1, 2)
        case .q4_0: return (32, 18)   // f16 d, 16 bytes of nibbles
        case .q4_1: return (32, 20)   // f16 d, f16 m, 16 bytes of nibbles
        case .q8_0: return (32, 34)   // f16 d, 32 int8
        }
    }

    public var description: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q8_0: return "Q8_0"
        }
    }
}

public struct GGUFTensorInfo: Equatable {
    public let name: String
    /// As GGUF lists them: fastest-varying first. A [rows × cols] matrix is [cols, rows].
    public let dims: [Int]
    public let type: GGMLType
    /// From the start of the data section.
    public let offset: Int

    public var count: Int { dims.reduce(1, *) }
    public var byteCount: Int { count / type.block.weights * type.block.bytes }
    /// Row-major shape, slowest first (the PyTorch / safetensors order).
    public var shape: [Int] { dims.reversed() }
}

/// A GGUF (v2 or v3) file: its metadata and tensor directory, parsed at open; tensor data is read from a
/// memory map on demand.
public final class GGUFFile {
    public let path: String
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// In file order.
    public let tensorInfos: [GGUFTensorInfo]
    public let tensors: [String: GGUFTensorInfo]
    private let data: Data
    private let dataStart: Int

    public init(path: String) throws {
        self.path = path
        let name = (path as NSString).lastPathComponent
        data = try mapFile(path)
        (version, metadata, tensorInfos, dataStart) = try data.withUnsafeBytes { raw in
            try Self.parseHeader(raw, file: name)
        }
        var byName: [String: GGUFTensorInfo] = [:]
        for info in tensorInfos {
            guard byName.updateValue(info, forKey: info.name) == nil else {
                throw FormatError(name, "tensor '\(info.name)' appears twice")
            }
            guard dataStart + info.offset + info.byteCount <= data.count else {
                throw FormatError(name, "truncated: tensor '\(info.name)' needs bytes up to \(dataStart + info.offset + info.byteCount), the file has \(data.count)")
            }
        }
        tensors = byName
    }

    private static func parseHeader(_ raw: UnsafeRawBufferPointer, file: String) throws
        -> (UInt32, [String: GGUFValue], [GGUFTensorInfo], Int)
    {
        var cursor = ByteCursor(raw, file: file)
        let magic = try cursor.readBytes(4, "the magic number")
        guard Array(magic) == Array("GGUF".utf8) else { throw FormatError(file, "not a GGUF file (no GGUF magic)") }
        let version = try cursor.read(UInt32.self, "the version")
        guard version == 2 || version == 3 else { throw FormatError(file, "GGUF version \(version) is not supported (2 or 3)") }
        let tensorCount = try cursor.read(UInt64.self, "the tensor count")
        let keyCount = try cursor.read(UInt64.self, "the metadata count")
        guard tensorCount < 1 << 24, keyCount < 1 << 24 else { throw FormatError(file, "implausible header counts") }

        var metadata: [String: GGUFValue] = [:]
        for index in 0..<Int(keyCount) {
            let key = try readString(&cursor, "metadata key #\(index)")
            let type = try cursor.read(UInt32.self, "the type of '\(key)'")
            metadata[key] = try readValue(&cursor, type: type, key: key)
        }

        var infos: [GGUFTensorInfo] = []
        for index in 0..<Int(tensorCount) {
            let name = try readString(&cursor, "the name of tensor #\(index)")
            let rank = try cursor.read(UInt32.self, "the rank of '\(name)'")
            guard rank >= 1 && rank <= 4 else { throw FormatError(file, "tensor '\(name)' has rank \(rank)") }
            var dims: [Int] = []
            for _ in 0..<rank {
                let dim = try cursor.read(UInt64.self, "the shape of '\(name)'")
                guard dim > 0 && dim < 1 << 32 else { throw FormatError(file, "tensor '\(name)' has dimension \(dim)") }
                dims.append(Int(dim))
            }
            let rawType = try cursor.read(UInt32.self, "the type of '\(name)'")
            guard let type = GGMLType(rawValue: rawType) else {
                throw FormatError(file, "tensor '\(name)' has ggml type \(rawType), which recr1 does not read (F32, F16, BF16, Q8_0, Q4_0, Q4_1)")
            }
            guard dims[0] % type.block.weights == 0 else {
                throw FormatError(file, "tensor '\(name)': a row of \(dims[0]) is not whole \(type) blocks")
            }
            let offset = try cursor.read(UInt64.self, "the offset of '\(name)'")
            guard offset < 1 << 48 else { throw FormatError(file, "tensor '\(name)' has an implausible offset \(offset)") }
            infos.append(GGUFTensorInfo(name: name, dims: dims, type: type, offset: Int(offset)))
        }
        let alignment = metadata["general.alignment"]?.int ?? 32
        guard alignment > 0 && alignment.nonzeroBitCount == 1 else { throw FormatError(file, "general.alignment \(alignment) is not a power of two") }
        let dataStart = (cursor.offset + alignment - 1) / alignment * alignment
        return (version, metadata, infos, dataStart)
    }

    private static func readString(_ cursor: inout ByteCursor, _ what: String) throws -> String {
        let length = try cursor.read(UInt64.self, "the length of \(what)")
        guard length < 1 << 30 else { throw FormatError(cursor.file, "\(what) claims \(length) bytes") }
        let bytes = try cursor.readBytes(Int(length), what)
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func readValue(_ cursor: inout ByteCursor, type: UInt32, key: String) throws -> GGUFValue {
        switch type {
        case 0: return .uint(UInt64(try cursor.read(UInt8.self, key)))
        case 1: return .int(Int64(try cursor.read(Int8.self, key)))
        case 2: return .uint(UInt64(try cursor.read(UInt16.self, key)))
        case 3: return .int(Int64(try cursor.read(Int16.self, key)))
        case 4: return .uint(UInt64(try cursor.read(UInt32.self, key)))
        case 5: return .int(Int64(try cursor.read(Int32.self, key)))
        case 6: return .float(Double(Float(bitPattern: try cursor.read(UInt32.self, key))))
        case 7: return .bool(try cursor.read(UInt8.self, key) != 0)
        case 8: return .string(try readString(&cursor, "the value of '\(key)'"))
        case 9:
            let elementType = try cursor.read(UInt32.self, "the element type of '\(key)'")
            let count = try cursor.read(UInt64.self, "the length of '\(key)'")
            guard count < 1 << 28 else { throw FormatError(cursor.file, "'\(key)' claims \(count) elements") }
            var values: [GGUFValue] = []
            values.reserveCapacity(Int(count))
            for _ in 0..<count { values.append(try readValue(&cursor, type: elementType, key: key)) }
            return .array(values)
        case 10: return .uint(try cursor.read(UInt64.self, key))
        case 11: return .int(try cursor.read(Int64.self, key))
        case 12: return .float(Double(bitPattern: try cursor.read(UInt64.self, key)))
        default: throw FormatError(cursor.file, "metadata '\(key)' has unknown type \(type)")
        }
    }

    /// The tensor's stored bytes, as they are in the file (blocks for quantised types).
    public func rawBytes(_ name: String) throws -> [UInt8] {
        guard let info = tensors[name] else {
            throw FormatError((path as NSString).lastPathComponent, "missing tensor '\(name)'")
        }
        let start = dataStart + info.offset
        return [UInt8](data[start..<(start + info.byteCount)])
    }

    /// The tensor's values as Float32, in row-major order (slowest dimension first).
    public func dequantize(_ name: String) throws -> [Float] {
        guard let info = tensors[name] else {
            throw FormatError((path as NSString).lastPathComponent, "missing tensor '\(name)'")
        }
        return data.withUnsafeBytes { raw in
            let bytes = UnsafeRawBufferPointer(rebasing: raw[(dataStart + info.offset)..<(dataStart + info.offset + info.byteCount)])
            return [Float](unsafeUninitializedCapacity: info.count) { out, initialized in
                Dequantize.run(info.type, from: bytes, into: out.baseAddress!, count: info.count)
                initialized = info.count
            }
        }
    }
}

/// GGML block formats -> Float32. Each block of 32 weights stores a scale d (and for Q4_1 a minimum m)
/// as f16, then the quantised values.
public enum Dequantize {
    public static func run(_ type: GGMLType, from bytes: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<Float>, count: Int) {
        switch type {
        case .f32:
            for i in 0..<count { out[i] = Float(bitPattern: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
        case .f16:
            for i in 0..<count { out[i] = half(bytes, 2 * i) }
        case .bf16:
            for i in 0..<count {
                out[i] = Float(bitPattern: UInt32(bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
            }
        case .q8_0:  // w = d * q
            for block in 0..<(count / 32) {
                let base = block * 34
                let d = half(bytes, base)
                for j in 0..<32 { out[block * 32 + j] = d * Float(Int8(bitPattern: bytes[base + 2 + j])) }
            }
        case .q4_0:  // w[j] = d * ((q[j] & 15) - 8), w[j + 16] = d * ((q[j] >> 4) - 8)
            for block in 0..<(count / 32) {
                let base = block * 18
                let d = half(bytes, base)
                for j in 0..<16 {
                    let q = bytes[base + 2 + j]
                    out[block * 32 + j] = d * Float(Int(q & 15) - 8)
                    out[block * 32 + j + 16] = d * Float(Int(q >> 4) - 8)
                }
            }
        case .q4_1:  // w[j] = d * (q[j] & 15) + m, w[j + 16] = d * (q[j] >> 4) + m
            for block in 0..<(count / 32) {
                let base = block * 20
                let d = half(bytes, base), m = half(bytes, base + 2)
                for j in 0..<16 {
                    let q = bytes[base + 4 + j]
                    out[block * 32 + j] = d * Float(q & 15) + m
                    out[block * 32 + j + 16] = d * Float(q >> 4) + m
                }
            }
        }
    }

    @inline(__always)
    static func half(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> Float {
        Float(Float16(bitPattern: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }
}
