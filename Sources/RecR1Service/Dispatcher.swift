import Foundation
import Logging
import RecR1Proto
import SwiftProtobuf

/// The envelope layer: one request frame in, one reply frame out. It checks the frame's size, decodes
/// the envelope, checks the token, finds the method, applies the deadline, runs the handler and encodes
/// the reply. It never throws and never traps on bad input: every failure becomes a status reply.
public final class Dispatcher {
    public struct Options {
        /// Frames larger than this get INVALID_ARGUMENT naming `max_message_bytes`.
        public var maxMessageBytes: Int
        /// When set, every request must carry this token.
        public var authToken: String?
        /// Test hook: sleep this long before running each handler (to hold a request in flight).
        public var handlerDelayMs: Int = 0

        public init(maxMessageBytes: Int, authToken: String? = nil) {
            self.maxMessageBytes = maxMessageBytes
            self.authToken = authToken
        }
    }

    private let table: MethodTable
    private var currentOptions: Options
    private let optionsLock = NSLock()
    /// Replaced as a whole on reload (SIGHUP); each request reads one consistent copy.
    public var options: Options {
        get { optionsLock.withLock { currentOptions } }
        set { optionsLock.withLock { currentOptions = newValue } }
    }
    private let stats: RequestStats
    private let logger: Logger

    public init(table: MethodTable, options: Options, stats: RequestStats = RequestStats(),
                logger: Logger = Logger(label: "recr1d.dispatch")) {
        self.table = table
        currentOptions = options
        self.stats = stats
        self.logger = logger
    }

    public func handle(frame: Data) -> Data {
        let receivedAt = ContinuousClock.now
        stats.begin()
        let reply = dispatch(frame: frame, receivedAt: receivedAt)
        stats.end(ok: reply.status.code == .ok)
        // Encoding a Reply of bytes and scalars cannot fail; an empty frame would still decode as a Reply.
        return (try? reply.serializedData()) ?? Data()
    }

    private func dispatch(frame: Data, receivedAt: ContinuousClock.Instant) -> Recr1_V1_Reply {
        let options = self.options
        if frame.count > options.maxMessageBytes {
            return Self.failure(0, RPCError.invalidArgument(
                "max_message_bytes",
                "request of \(frame.count) bytes exceeds max_message_bytes (\(options.maxMessageBytes))"))
        }
        let request: Recr1_V1_Request
        do {
            request = try Recr1_V1_Request(serializedBytes: frame)
        } catch {
            return Self.failure(0, RPCError.invalidArgument("envelope", "malformed request envelope (\(error))"))
        }
        if request.method.isEmpty {
            return Self.failure(request.requestID, RPCError.invalidArgument("method", "no method named"))
        }
        if let token = options.authToken, !constantTimeEqual(Array(request.authToken.utf8), Array(token.utf8)) {
            let what = request.authToken.isEmpty ? "this server requires a token" : "wrong token"
            return Self.failure(request.requestID, RPCError(.unauthenticated, field: "auth_token", what))
        }
        guard let handler = table.handler(for: request.method) else {
            return Self.failure(request.requestID, RPCError.unimplemented(
                "unknown method '\(request.method)' (methods look like 'recr1.v1.Policy/Info')"))
        }
        let context = CallContext(
            method: request.method, requestId: request.requestID, receivedAt: receivedAt,
            deadline: request.timeoutMs == 0 ? nil : receivedAt + .milliseconds(Int(request.timeoutMs)))

        if options.handlerDelayMs > 0 { Thread.sleep(forTimeInterval: Double(options.handlerDelayMs) / 1000) }
        do {
            try context.checkDeadline()
            let payload = try handler(request.payload, context)
            // The client has given up by now: say so rather than send a result it no longer waits for.
            try context.checkDeadline()
            var reply = Recr1_V1_Reply()
            reply.requestID = request.requestID
            reply.status.code = .ok
            reply.payload = payload
            return reply
        } catch let error as RPCError {
            logger.debug("\(request.method) #\(request.requestID): \(error)")
            return Self.failure(request.requestID, error)
        } catch {
            logger.error("\(request.method) #\(request.requestID) failed: \(error)")
            return Self.failure(request.requestID, RPCError.internalError("\(request.method) failed: \(error)"))
        }
    }

    static func failure(_ requestId: UInt64, _ error: RPCError) -> Recr1_V1_Reply {
        var reply = Recr1_V1_Reply()
        reply.requestID = requestId
        reply.status = error.status
        return reply
    }
}

/// Compares without an early exit, so that the time taken does not reveal how much of a token matched.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var difference = UInt8(a.count == b.count ? 0 : 1)
    for i in 0..<max(a.count, b.count) {
        difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
    }
    return difference == 0
}
