import CNNG
import Foundation
import RecR1Proto
import SwiftProtobuf

/// A client of one reward plugin (the Reward service of proto/recr1/v1/reward.proto), which may listen on
/// several addresses: calls go round-robin over them, each with a deadline, and a failed call is retried on
/// the next address after a back-off. A plugin that fails, hangs or answers the wrong number of results is
/// an error for that batch, never a crash.
public final class RewardClient {
    public struct Settings: Equatable {
        public var name: String
        public var addresses: [String]
        public var weight: Float = 1
        public var timeoutMs = 30_000
        public var retries = 2
        public var backoffMs = 200
        /// Items per request; a larger batch is split.
        public var batchSize = 256
        public var token: String?
        /// For tls+tcp:// addresses: the CA certificate(s) (PEM) the plugin's certificate must chain to, and
        /// the name it must carry (default: the address's host).
        public var tlsCAFile: String?
        public var tlsServerName: String?

        public init(name: String, addresses: [String]) {
            self.name = name
            self.addresses = addresses
        }
    }

    public struct PluginError: Error, CustomStringConvertible {
        public let description: String
    }

    public let settings: Settings
    private var next = 0
    private var requestId: UInt64 = 0
    private let lock = NSLock()

    public init(settings: Settings) throws {
        guard !settings.addresses.isEmpty else { throw PluginError(description: "plugin '\(settings.name)' has no addresses") }
        self.settings = settings
    }

    /// One result per item, in order; a whole batch that cannot be scored throws.
    public func score(_ items: [Recr1_V1_RewardItem]) throws -> [Recr1_V1_RewardResult] {
        var results: [Recr1_V1_RewardResult] = []
        var start = 0
        while start < items.count {
            let batch = Array(items[start..<min(start + settings.batchSize, items.count)])
            results += try scoreBatch(batch)
            start += batch.count
        }
        return results
    }

    private func scoreBatch(_ items: [Recr1_V1_RewardItem]) throws -> [Recr1_V1_RewardResult] {
        var request = Recr1_V1_RewardRequest()
        request.items = items
        let payload = try request.serializedData()
        var failures: [String] = []
        for attempt in 0...settings.retries {
            if attempt > 0 { usleep(useconds_t(settings.backoffMs * (1 << (attempt - 1)) * 1000)) }
            let address: String = lock.withLock {
                defer { next = (next + 1) % settings.addresses.count }
                return settings.addresses[next]
            }
            do {
                let reply = try call(address: address, payload: payload)
                guard reply.results.count == items.count else {
                    throw PluginError(description: "\(address) answered \(reply.results.count) results for \(items.count) items")
                }
                return reply.results
            } catch {
                failures.append("\(error)")
            }
        }
        throw PluginError(description: "plugin '\(settings.name)' failed \(settings.retries + 1) times: "
                          + failures.joined(separator: "; "))
    }

    /// Dials with TLS, verifying the plugin's certificate against `tlsCAFile`.
    private func dialTLS(_ socket: nng_socket, _ address: String) throws {
        guard let ca = settings.tlsCAFile else {
            throw PluginError(description: "\(address): tls+tcp needs tls_ca_file to verify the plugin")
        }
        var dialer = nng_dialer()
        try NNGError.check(nng_dialer_create(&dialer, socket, address), "dial \(address)")
        var tls: OpaquePointer?
        try NNGError.check(nng_tls_config_alloc(&tls, NNG_TLS_MODE_CLIENT), "TLS configuration")
        defer { nng_tls_config_free(tls) }
        try NNGError.check(nng_tls_config_ca_file(tls, ca), "read tls_ca_file \(ca)")
        try NNGError.check(nng_tls_config_auth_mode(tls, NNG_TLS_AUTH_MODE_REQUIRED), "TLS verification")
        let host = settings.tlsServerName ?? String(address.dropFirst("tls+tcp://".count).split(separator: ":").first ?? "")
        try NNGError.check(nng_tls_config_server_name(tls, host), "TLS server name")
        try NNGError.check(nng_dialer_set_ptr(dialer, NNG_OPT_TLS_CONFIG, UnsafeMutableRawPointer(tls)), "TLS for \(address)")
        try NNGError.check(nng_dialer_start(dialer, 0), "dial \(address)")
    }

    /// One request/reply on a fresh REQ socket (a plugin that hung must not leave a stale reply behind).
    private func call(address: String, payload: Data) throws -> Recr1_V1_RewardReply {
        var socket = nng_socket()
        try NNGError.check(nng_req0_open(&socket), "open REQ socket")
        defer { nng_close(socket) }
        _ = nng_socket_set_ms(socket, NNG_OPT_RECVTIMEO, nng_duration(settings.timeoutMs))
        _ = nng_socket_set_ms(socket, NNG_OPT_SENDTIMEO, nng_duration(settings.timeoutMs))
        _ = nng_socket_set_ms(socket, NNG_OPT_REQ_RESENDTIME, -1)  // a resent request would be scored twice
        if address.hasPrefix("tls+tcp://") {
            try dialTLS(socket, address)
        } else {
            try NNGError.check(nng_dial(socket, address, nil, 0), "dial \(address)")
        }

        var envelope = Recr1_V1_Request()
        envelope.method = "recr1.v1.Reward/Reward"
        envelope.requestID = lock.withLock { requestId += 1; return requestId }
        envelope.timeoutMs = UInt32(settings.timeoutMs)
        if let token = settings.token { envelope.authToken = token }
        envelope.payload = payload
        var frame = try envelope.serializedData()
        try frame.withUnsafeMutableBytes { bytes in
            try NNGError.check(nng_send(socket, bytes.baseAddress, bytes.count, 0), "send to \(address)")
        }
        var buffer: UnsafeMutableRawPointer?
        var size = 0
        try NNGError.check(nng_recv(socket, &buffer, &size, Int32(NNG_FLAG_ALLOC)), "receive from \(address)")
        let data = Data(bytes: buffer!, count: size)
        nng_free(buffer, size)
        let reply = try Recr1_V1_Reply(serializedBytes: data)
        guard reply.status.code == .ok else {
            throw PluginError(description: "\(address): \(reply.status.code) \(reply.status.message)")
        }
        return try Recr1_V1_RewardReply(serializedBytes: reply.payload)
    }
}
