import Foundation

/// A model file that cannot be used, with what is wrong and where (the key, tensor or offset).
public struct FormatError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let message: String

    public init(_ file: String, _ message: String) {
        self.file = file
        self.message = message
    }

    public var description: String { "\(file): \(message)" }
}

/// Bounds-checked little-endian reads from a byte buffer; every failure names what was being read.
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    let file: String
    var offset = 0

    init(_ bytes: UnsafeRawBufferPointer, file: String) {
        self.bytes = bytes
        self.file = file
    }

    mutating func need(_ count: Int, for what: @autoclosure () -> String) throws {
        guard count >= 0, offset <= bytes.count - count else {
            throw FormatError(file, "truncated: \(what()) needs \(count) bytes at offset \(offset), the file has \(bytes.count)")
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, for: what())
        let value = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += MemoryLayout<T>.size
        return value
    }

    mutating func readBytes(_ count: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        try need(count, for: what())
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
        offset += count
        return slice
    }
}

/// Memory-maps a model file; a failure names the file.
func mapFile(_ path: String) throws -> Data {
    do {
        return try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
    } catch {
        throw FormatError((path as NSString).lastPathComponent, "cannot read: \(error.localizedDescription)")
    }
}
