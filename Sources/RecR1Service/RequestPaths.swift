import Foundation

/// Where a request may name a file: the state directory and the configured `allowed_dirs`, nothing else.
///
/// A path from a request (a checkpoint, an export directory, a job file and the files it names) is
/// resolved so: relative paths are taken from the state directory (or from the job file's folder); a
/// NUL byte, a `..` component, more than `maxPathBytes` in all or `maxNameBytes` in one name is
/// INVALID_ARGUMENT; then the deepest part of it that exists is resolved with `realpath` (symlinks
/// included) and the whole must lie inside one of the roots, resolved the same way, else
/// PERMISSION_DENIED. Every error names the request's field.
///
/// Refusing `..` outright, rather than folding it, is deliberate: `a/link/..` is not `a` when `link` is
/// a symlink, and no checkpoint or export needs to climb.
public struct RequestPaths: Sendable {
    public static let maxPathBytes = 4095   // PATH_MAX less its terminator
    public static let maxNameBytes = 255    // NAME_MAX

    /// The roots as configured (state directory first), and as resolved when this was made.
    public let roots: [String]
    private let resolvedRoots: [String]

    public init(stateDir: String, allowedDirs: [String] = []) {
        roots = [stateDir] + allowedDirs
        let here = FileManager.default.currentDirectoryPath
        resolvedRoots = roots.compactMap { Self.resolveExisting(Self.absolute($0, from: here)) }
    }

    /// The absolute, symlink-free path that `path` names, when it is allowed; relative paths start at
    /// `base` (default: the state directory).
    public func resolve(_ path: String, field: String, from base: String? = nil) throws -> String {
        try Self.checkShape(path, field: field)
        let full = Self.absolute(path, from: base ?? roots[0])
        try Self.checkShape(full, field: field)
        guard let resolved = Self.resolveExisting(full) else {
            throw RPCError(.permissionDenied, field: field, "\(path) passes through a symlink whose target does not exist")
        }
        guard resolvedRoots.contains(where: { Self.isInside(resolved, $0) }) else {
            let allowed = roots.count == 1 ? "the state dir \(roots[0])"
                : "the state dir \(roots[0]) or an allowed_dirs entry (\(roots.dropFirst().joined(separator: ", ")))"
            let shown = resolved == full ? path : "\(path) (\(resolved))"
            throw RPCError(.permissionDenied, field: field, "\(shown) is outside \(allowed); set allowed_dirs to let requests write or read there")
        }
        return resolved
    }

    static func checkShape(_ path: String, field: String) throws {
        if path.isEmpty { throw RPCError.invalidArgument(field, "an empty path") }
        if path.utf8.contains(0) { throw RPCError.invalidArgument(field, "the path holds a NUL byte") }
        if path.utf8.count > maxPathBytes {
            throw RPCError.invalidArgument(field, "the path is \(path.utf8.count) bytes long; at most \(maxPathBytes)")
        }
        for name in path.split(separator: "/", omittingEmptySubsequences: true) {
            if name == ".." { throw RPCError.invalidArgument(field, "'..' is not allowed in a path (\(String(path.prefix(200))))") }
            if name.utf8.count > maxNameBytes {
                throw RPCError.invalidArgument(field, "a name in the path is \(name.utf8.count) bytes long; at most \(maxNameBytes)")
            }
        }
    }

    static func absolute(_ path: String, from base: String) -> String {
        path.hasPrefix("/") ? path : (base as NSString).appendingPathComponent(path)
    }

    /// `realpath` of the deepest existing ancestor, with the rest of the names appended: the rest does
    /// not exist yet, so it cannot be a symlink. nil when a name is a symlink to nothing (writing
    /// through it would create its target, wherever that is).
    static func resolveExisting(_ absolutePath: String) -> String? {
        var names = absolutePath.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
            .filter { $0 != "." }
        var rest: [String] = []
        while true {
            let prefix = "/" + names.joined(separator: "/")
            if let real = realpath(prefix, nil) {
                defer { free(real) }
                let base = String(cString: real)
                return rest.isEmpty ? base : (base == "/" ? "" : base) + "/" + rest.joined(separator: "/")
            }
            var info = stat()
            if lstat(prefix, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK { return nil }
            guard let last = names.popLast() else { return "/" + rest.joined(separator: "/") }
            rest.insert(last, at: 0)
        }
    }

    static func isInside(_ path: String, _ root: String) -> Bool {
        root == "/" || path == root || path.hasPrefix(root + "/")
    }
}
