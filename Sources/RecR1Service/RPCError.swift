import RecR1Proto

public typealias StatusCode = Recr1_V1_Code

/// A failed call: the status code, a message that starts with the offending field, and that field's path.
/// Handlers throw it; the dispatcher turns it into the reply's `Status`.
public struct RPCError: Error, CustomStringConvertible, Equatable {
    public var code: StatusCode
    public var message: String
    public var field: String
    public var retryAfterMs: UInt32

    public init(_ code: StatusCode, field: String = "", _ message: String, retryAfterMs: UInt32 = 0) {
        self.code = code
        self.field = field
        self.message = field.isEmpty || message.hasPrefix(field) ? message : "\(field): \(message)"
        self.retryAfterMs = retryAfterMs
    }

    public static func invalidArgument(_ field: String, _ message: String) -> RPCError {
        RPCError(.invalidArgument, field: field, message)
    }
    public static func notFound(_ field: String, _ message: String) -> RPCError {
        RPCError(.notFound, field: field, message)
    }
    public static func failedPrecondition(_ message: String) -> RPCError {
        RPCError(.failedPrecondition, message)
    }
    public static func unimplemented(_ message: String) -> RPCError { RPCError(.unimplemented, message) }
    public static func internalError(_ message: String) -> RPCError { RPCError(.internal, message) }

    public var status: Recr1_V1_Status {
        var status = Recr1_V1_Status()
        status.code = code
        status.message = message
        status.field = field
        status.retryAfterMs = retryAfterMs
        return status
    }

    public var description: String { "\(code) \(message)" }
}
