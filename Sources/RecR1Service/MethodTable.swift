import Foundation
import RecR1Proto
import SwiftProtobuf

/// What a handler knows about the call it serves.
public struct CallContext {
    public let method: String
    public let requestId: UInt64
    public let receivedAt: ContinuousClock.Instant
    /// nil when the request set no deadline.
    public let deadline: ContinuousClock.Instant?

    public var deadlinePassed: Bool { deadline.map { ContinuousClock.now >= $0 } ?? false }

    /// Long handlers call this between units of work.
    public func checkDeadline() throws {
        if deadlinePassed {
            throw RPCError(.deadlineExceeded, field: "timeout_ms", "the request's deadline passed")
        }
    }
}

/// Method name -> handler, where a handler takes the serialized request payload and returns the
/// serialized reply payload. `register` adds the decoding and encoding of the typed messages.
public struct MethodTable {
    public typealias RawHandler = (Data, CallContext) throws -> Data

    private(set) var handlers: [String: RawHandler] = [:]

    public init() {}

    public var methods: [String] { handlers.keys.sorted() }

    public mutating func register<Request: SwiftProtobuf.Message, Reply: SwiftProtobuf.Message>(
        _ method: String, _ body: @escaping (Request, CallContext) throws -> Reply
    ) {
        handlers[method] = { payload, context in
            let request: Request
            do {
                request = try Request(serializedBytes: payload)
            } catch {
                throw RPCError.invalidArgument("payload", "cannot decode \(Request.protoMessageName): \(error)")
            }
            return try body(request, context).serializedData()
        }
    }

    /// A handler that works on the serialized payloads itself.
    public mutating func register(_ method: String, raw: @escaping RawHandler) {
        handlers[method] = raw
    }

    func handler(for method: String) -> RawHandler? { handlers[method] }
}
