import Foundation
import RecR1Proto
import SwiftProtobuf
import XCTest

@testable import RecR1Service

/// The envelope layer on its own: frames in, status replies out.
final class DispatcherTests: XCTestCase {
    override class func setUp() { TestLogging.quiet }

    private func makeTable() -> MethodTable {
        var table = MethodTable()
        table.register("test.Echo/Tokenize") { (request: Recr1_V1_TokenizeRequest, _) -> Recr1_V1_TokenizeReply in
            var reply = Recr1_V1_TokenizeReply()
            reply.tokens = request.texts.map { text in
                var ids = Recr1_V1_TokenIds()
                ids.ids = text.utf8.map(UInt32.init)
                return ids
            }
            return reply
        }
        table.register("test.Echo/Refuse") { (_: Recr1_V1_InfoRequest, _) -> Recr1_V1_InfoReply in
            throw RPCError.invalidArgument("sampling.top_p", "must be in (0, 1], got 7")
        }
        table.register("test.Echo/Crash") { (_: Recr1_V1_InfoRequest, _) -> Recr1_V1_InfoReply in
            struct Boom: Error {}
            throw Boom()
        }
        table.register("test.Echo/Slow") { (_: Recr1_V1_InfoRequest, _) -> Recr1_V1_InfoReply in
            Thread.sleep(forTimeInterval: 0.05)
            return Recr1_V1_InfoReply()
        }
        return table
    }

    private func request(_ method: String, _ payload: some SwiftProtobuf.Message, id: UInt64 = 42,
                         timeoutMs: UInt32 = 0, token: String = "") throws -> Data {
        var request = Recr1_V1_Request()
        request.method = method
        request.requestID = id
        request.timeoutMs = timeoutMs
        request.authToken = token
        request.payload = try payload.serializedData()
        return try request.serializedData()
    }

    private func reply(_ dispatcher: Dispatcher, _ frame: Data) throws -> Recr1_V1_Reply {
        try Recr1_V1_Reply(serializedBytes: dispatcher.handle(frame: frame))
    }

    func testValidRequestIsAnsweredWithItsIdAndPayload() throws {
        let dispatcher = Dispatcher(table: makeTable(), options: .init(maxMessageBytes: 1 << 20))
        var tokenize = Recr1_V1_TokenizeRequest()
        tokenize.texts = ["ab"]
        let answer = try reply(dispatcher, request("test.Echo/Tokenize", tokenize, id: 99))
        XCTAssertEqual(answer.status.code, .ok)
        XCTAssertEqual(answer.requestID, 99)
        XCTAssertEqual(try Recr1_V1_TokenizeReply(serializedBytes: answer.payload).tokens.first?.ids, [97, 98])
    }

    func testGarbageAndTruncatedFramesGetInvalidArgument() throws {
        let dispatcher = Dispatcher(table: makeTable(), options: .init(maxMessageBytes: 1 << 20))
        let garbage = try reply(dispatcher, Data([0xff, 0xff, 0xff, 0x07, 0x00, 0x13]))
        XCTAssertEqual(garbage.status.code, .invalidArgument)
        XCTAssertEqual(garbage.status.field, "envelope")

        var tokenize = Recr1_V1_TokenizeRequest()
        tokenize.texts = [String(repeating: "x", count: 300)]
        let whole = try request("test.Echo/Tokenize", tokenize)
        let truncated = try reply(dispatcher, whole.prefix(whole.count - 10))
        XCTAssertEqual(truncated.status.code, .invalidArgument)
        XCTAssertEqual(truncated.status.field, "envelope")
        XCTAssertTrue(truncated.payload.isEmpty)
    }

    func testUndecodablePayloadNamesThePayload() throws {
        let dispatcher = Dispatcher(table: makeTable(), options: .init(maxMessageBytes: 1 << 20))
        var envelope = Recr1_V1_Request()
        envelope.method = "test.Echo/Tokenize"
        envelope.payload = Data([0x0a, 0x05, 0x61])  // a string field that claims 5 bytes and has 1
        let answer = try reply(dispatcher, envelope.serializedData())
        XCTAssertEqual(answer.status.code, .invalidArgument)
        XCTAssertEqual(answer.status.field, "payload")
        XCTAssertTrue(answer.status.message.contains("TokenizeRequest"), answer.status.message)
    }

    func testOversizedFrameNamesTheLimit() throws {
        let dispatcher = Dispatcher(table: makeTable(), options: .init(maxMessageBytes: 1000))
        var tokenize = Recr1_V1_TokenizeRequest()
        tokenize.texts = [String(repeating: "y", count: 2000)]
        let answer = try reply(dispatcher, request("test.Echo/Tokenize", tokenize))
        XCTAssertEqual(answer.status.code, .invalidArgument)
        XCTAssertEqual(answer.status.field, "max_message_bytes")
        XCTAssertTrue(answer.status.message.contains("1000"), answer.status.message)
    }

    func testMissingAndUnknownMethods() throws {
        let dispatcher = Dispatcher(table: makeTable(), options: .init(maxMessageBytes: 1 << 20))
        let none = try reply(dispatcher, request("", Recr1_V1_InfoRequest()))
        XCTAssertEqual(none.status.code, .invalidArgument)
        XCTAssertEqual(none.status.field, "method")
        let unknown = try reply(dispatcher, request("test.Echo/Nope", Recr1_V1_InfoRequest(), id: 5))
        XCTAssertEqual(unknown.status.code, .unimplemented)
        XCTAssertEqual(unknown.requestID, 5)
        XCTAssertTrue(unknown.status.message.contains("test.Echo/Nope"))
    }

    func testHandlerErrorsBecomeStatuses() throws {
        let dispatcher = Dispatcher(table: makeTable(), options: .init(maxMessageBytes: 1 << 20))
        let refused = try reply(dispatcher, request("test.Echo/Refuse", Recr1_V1_InfoRequest()))
        XCTAssertEqual(refused.status.code, .invalidArgument)
        XCTAssertEqual(refused.status.field, "sampling.top_p")
        XCTAssertTrue(refused.status.message.hasPrefix("sampling.top_p"), refused.status.message)
        let crashed = try reply(dispatcher, request("test.Echo/Crash", Recr1_V1_InfoRequest()))
        XCTAssertEqual(crashed.status.code, .internal)
        XCTAssertTrue(crashed.status.message.contains("Boom"), crashed.status.message)
    }

    func testTokenIsRequiredWhenConfigured() throws {
        let dispatcher = Dispatcher(table: makeTable(), options: .init(maxMessageBytes: 1 << 20, authToken: "s3cret"))
        let missing = try reply(dispatcher, request("test.Echo/Slow", Recr1_V1_InfoRequest()))
        XCTAssertEqual(missing.status.code, .unauthenticated)
        XCTAssertEqual(missing.status.field, "auth_token")
        let wrong = try reply(dispatcher, request("test.Echo/Slow", Recr1_V1_InfoRequest(), token: "s3cres"))
        XCTAssertEqual(wrong.status.code, .unauthenticated)
        let right = try reply(dispatcher, request("test.Echo/Slow", Recr1_V1_InfoRequest(), token: "s3cret"))
        XCTAssertEqual(right.status.code, .ok)
    }

    func testDeadlinePassedDuringHandlerGivesDeadlineExceeded() throws {
        let dispatcher = Dispatcher(table: makeTable(), options: .init(maxMessageBytes: 1 << 20))
        let late = try reply(dispatcher, request("test.Echo/Slow", Recr1_V1_InfoRequest(), timeoutMs: 1))
        XCTAssertEqual(late.status.code, .deadlineExceeded)
        XCTAssertEqual(late.status.field, "timeout_ms")
        let inTime = try reply(dispatcher, request("test.Echo/Slow", Recr1_V1_InfoRequest(), timeoutMs: 60_000))
        XCTAssertEqual(inTime.status.code, .ok)
    }

    func testStatsCountServedAndFailed() throws {
        let stats = RequestStats()
        let dispatcher = Dispatcher(table: makeTable(), options: .init(maxMessageBytes: 1 << 20), stats: stats)
        _ = dispatcher.handle(frame: try request("test.Echo/Slow", Recr1_V1_InfoRequest()))
        _ = dispatcher.handle(frame: Data([1, 2, 3]))
        let counts = stats.snapshot
        XCTAssertEqual(counts.served, 2)
        XCTAssertEqual(counts.failed, 1)
        XCTAssertEqual(counts.inFlight, 0)
    }

    func testConstantTimeEqual() {
        XCTAssertTrue(constantTimeEqual(Array("abc".utf8), Array("abc".utf8)))
        XCTAssertFalse(constantTimeEqual(Array("abc".utf8), Array("abd".utf8)))
        XCTAssertFalse(constantTimeEqual(Array("abc".utf8), Array("abcd".utf8)))
        XCTAssertFalse(constantTimeEqual([], Array("a".utf8)))
        XCTAssertTrue(constantTimeEqual([], []))
    }

    func testEveryPolicyMethodIsRegistered() {
        let service = PolicyService(config: ServerConfig(), policy: nil, listening: [], stats: RequestStats())
        XCTAssertEqual(Set(service.methodTable().methods), Set(PolicyMethod.allCases.map(\.fullName)))
        XCTAssertEqual(PolicyMethod.allCases.count, 14)
    }
}
