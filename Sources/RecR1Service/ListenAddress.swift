import Foundation

/// An address recr1d listens on, checked and normalised before the transport sees it.
///
/// - `ipc:///path/to.sock`: the default. The socket file is created owner-only (0600).
/// - `tcp://HOST:PORT`: only when asked. With no host (`tcp://:5555` or `tcp://*:5555`) it binds to the
///   loopback interface, never to every interface; give an address to listen elsewhere.
/// - `tls+tcp://HOST:PORT`: tcp with TLS (the same loopback rule); needs `tls_cert_key_file`.
public struct ListenAddress: Equatable, CustomStringConvertible {
    public enum Kind: Equatable { case ipc(path: String), tcp(host: String, port: Int), tls(host: String, port: Int) }

    public let kind: Kind

    public var url: String {
        switch kind {
        case .ipc(let path): return "ipc://\(path)"
        case .tcp(let host, let port): return "tcp://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        case .tls(let host, let port): return "tls+tcp://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        }
    }

    public var description: String { url }

    public init(parsing text: String) throws {
        if text.hasPrefix("ipc://") {
            let path = String(text.dropFirst("ipc://".count))
            guard path.hasPrefix("/") else {
                throw ConfigError(key: "listen", "'\(text)': ipc addresses need an absolute path (ipc:///run/recr1d/recr1d.sock)")
            }
            kind = .ipc(path: path)
        } else if text.hasPrefix("tcp://") || text.hasPrefix("tls+tcp://") {
            let tls = text.hasPrefix("tls+tcp://")
            let rest = String(text.dropFirst(tls ? "tls+tcp://".count : "tcp://".count))
            guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]),
                  (1...65535).contains(port)
            else {
                throw ConfigError(key: "listen", "'\(text)': tcp addresses look like tcp://127.0.0.1:5555")
            }
            var host = String(rest[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            if host.isEmpty || host == "*" { host = "127.0.0.1" }
            kind = tls ? .tls(host: host, port: port) : .tcp(host: host, port: port)
        } else {
            throw ConfigError(key: "listen", "'\(text)': unsupported scheme (use ipc:///path, tcp://host:port or tls+tcp://host:port)")
        }
    }

    /// `$XDG_RUNTIME_DIR/recr1d.sock`, or `/tmp/recr1d-<uid>/recr1d.sock` when that is unset.
    public static func defaultIPCPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty { return "\(runtime)/recr1d.sock" }
        return "/tmp/recr1d-\(getuid())/recr1d.sock"
    }

    public static var defaultAddress: ListenAddress { try! ListenAddress(parsing: "ipc://\(defaultIPCPath())") }
}
