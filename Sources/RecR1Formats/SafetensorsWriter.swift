import Foundation

/// Writes F32 tensors as a safetensors file (the layout `SafetensorsFile` reads), and files durably.
public enum SafetensorsWriter {
    public struct Tensor {
        public var name: String
        public var shape: [Int]
        public var values: [Float]

        public init(name: String, shape: [Int], values: [Float]) {
            precondition(shape.reduce(1, *) == values.count, "\(name): \(values.count) values for shape \(shape)")
            self.name = name
            self.shape = shape
            self.values = values
        }
    }

    /// The file's bytes: header length, JSON header (tensors in the given order, 8-byte aligned data), data.
    public static func encode(_ tensors: [Tensor], metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for tensor in tensors {
            let bytes = tensor.values.count * 4
            header[tensor.name] = ["dtype": "F32", "shape": tensor.shape, "data_offsets": [offset, offset + bytes]]
            offset += bytes
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }  // pad with spaces so the data starts aligned
        var data = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(json)
        for tensor in tensors {
            tensor.values.withUnsafeBytes { data.append(contentsOf: $0) }  // little-endian hosts only (x86-64, arm64)
        }
        return data
    }

    public static func write(_ tensors: [Tensor], metadata: [String: String] = [:], to path: String) throws {
        try DurableFile.write(try encode(tensors, metadata: metadata), to: path)
    }
}

/// Writes that survive a crash: each file is fsynced before it counts, and a directory replaces its
/// predecessor by rename, so a reader sees the old one or the new one, never half of either.
public enum DurableFile {
    public struct WriteError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Writes and fsyncs one file.
    public static func write(_ data: Data, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw WriteError(description: "cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try data.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw WriteError(description: "cannot write \(path): \(String(cString: strerror(errno)))") }
                done += n
            }
        }
        guard fsync(fd) == 0 else { throw WriteError(description: "cannot fsync \(path): \(String(cString: strerror(errno)))") }
    }

    public static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    /// Fills a fresh temporary directory beside `path` with `fill`, syncs it, then moves it to `path`.
    /// An existing `path` is moved aside first and removed only after the new one is in place; after a
    /// crash in between, `path.previous` still holds it (`resolve` finds it).
    public static func replaceDirectory(_ path: String, fill: (String) throws -> Void) throws {
        let fm = FileManager.default
        let parent = (path as NSString).deletingLastPathComponent
        try fm.createDirectory(atPath: parent.isEmpty ? "." : parent, withIntermediateDirectories: true)
        let temporary = "\(path).partial-\(getpid())"
        try? fm.removeItem(atPath: temporary)
        removeAbandonedPartials(of: path)
        try fm.createDirectory(atPath: temporary, withIntermediateDirectories: false)
        do {
            try fill(temporary)
            syncDirectory(temporary)
        } catch {
            try? fm.removeItem(atPath: temporary)
            throw error
        }
        let previous = "\(path).previous"
        if fm.fileExists(atPath: path) {
            try? fm.removeItem(atPath: previous)
            guard rename(path, previous) == 0 else {
                throw WriteError(description: "cannot move \(path) aside: \(String(cString: strerror(errno)))")
            }
        }
        guard rename(temporary, path) == 0 else {
            throw WriteError(description: "cannot move \(temporary) to \(path): \(String(cString: strerror(errno)))")
        }
        syncDirectory(parent.isEmpty ? "." : parent)
        try? fm.removeItem(atPath: previous)
    }

    /// Removes `path.partial-PID` directories left by processes that died while writing (kill -9, power
    /// loss): nothing reads them, and they would hold a checkpoint's worth of disk each.
    static func removeAbandonedPartials(of path: String) {
        let fm = FileManager.default
        let parent = (path as NSString).deletingLastPathComponent
        let prefix = (path as NSString).lastPathComponent + ".partial-"
        for name in (try? fm.contentsOfDirectory(atPath: parent.isEmpty ? "." : parent)) ?? [] where name.hasPrefix(prefix) {
            guard let pid = pid_t(name.dropFirst(prefix.count)), pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH {   // its writer is gone
                try? fm.removeItem(atPath: (parent as NSString).appendingPathComponent(name))
            }
        }
    }

    /// `path`, or its predecessor when a crash stopped `replaceDirectory` between its two renames.
    public static func resolve(_ path: String) -> String {
        let fm = FileManager.default
        if !fm.fileExists(atPath: path) && fm.fileExists(atPath: "\(path).previous") { return "\(path).previous" }
        return path
    }
}
