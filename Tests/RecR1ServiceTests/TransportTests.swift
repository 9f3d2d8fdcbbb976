import CNNG
import CRecR1Support
import Foundation
import RecR1Kernels
import RecR1Proto
import SwiftProtobuf
import XCTest

@testable import RecR1Service

/// A blocking REQ socket for tests: frames out, frames back.
final class TestRequester {
    private var socket = nng_socket()

    init(dial url: String, timeoutMs: Int32 = 5000) throws {
        try NNGError.check(nng_req0_open(&socket), "open REQ")
        _ = nng_socket_set_ms(socket, NNG_OPT_RECVTIMEO, timeoutMs)
        try NNGError.check(nng_dial(socket, url, nil, 0), "dial \(url)")
    }

    func roundtrip(_ frame: Data) throws -> Data {
        try frame.withUnsafeBytes { buffer in
            try NNGError.check(nng_send(socket, UnsafeMutableRawPointer(mutating: buffer.baseAddress), buffer.count, 0), "send")
        }
        var body: UnsafeMutableRawPointer?
        var size = 0
        try withUnsafeMutablePointer(to: &body) { pointer in
            try NNGError.check(nng_recv(socket, UnsafeMutableRawPointer(pointer), &size, Int32(NNG_FLAG_ALLOC)), "recv")
        }
        defer { nng_free(body, size) }
        return Data(bytes: body!, count: size)
    }

    func call(_ method: String, _ payload: some SwiftProtobuf.Message, id: UInt64 = 1) throws -> Recr1_V1_Reply {
        var request = Recr1_V1_Request()
        request.method = method
        request.requestID = id
        request.payload = try payload.serializedData()
        return try Recr1_V1_Reply(serializedBytes: roundtrip(request.serializedData()))
    }

    deinit { nng_close(socket) }
}

/// A value shared between test threads.
final class Locked<Value> {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value { lock.withLock { stored } }
    func update(_ body: (inout Value) -> Void) { lock.withLock { body(&stored) } }
}

/// recr1d in-process over real nng sockets.
final class TransportTests: XCTestCase {
    override class func setUp() { TestLogging.quiet }

    private func temporarySocketPath() -> String {
        let directory = NSTemporaryDirectory() + "recr1-test-\(UUID().uuidString.prefix(8))"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
        return directory + "/d.sock"
    }

    private func startDaemon(_ configure: (inout ServerConfig) -> Void = { _ in }, delayMs: Int = 0) throws -> (Daemon, String) {
        let path = temporarySocketPath()
        var config = ServerConfig()
        config.listen = ["ipc://\(path)"]
        config.workers = 3
        config.model = "none"  // these tests are about the transport
        configure(&config)
        let daemon = try Daemon(config: config, handlerDelayMs: delayMs)
        try daemon.start()
        return (daemon, "ipc://\(path)")
    }

    func testInfoAndHealthOverIPC() throws {
        let (daemon, url) = try startDaemon()
        defer { daemon.stop() }
        let client = try TestRequester(dial: url)
        let reply = try client.call(PolicyMethod.info.fullName, Recr1_V1_InfoRequest(), id: 17)
        XCTAssertEqual(reply.status.code, .ok)
        XCTAssertEqual(reply.requestID, 17)
        let info = try Recr1_V1_InfoReply(serializedBytes: reply.payload)
        XCTAssertEqual(info.serverVersion, RecR1Version.current)
        XCTAssertEqual(info.blasCore, BLAS.core)
        XCTAssertEqual(info.listen, [url])
        XCTAssertEqual(info.workers, 3)
        XCTAssertFalse(info.model.loaded)

        let health = try Recr1_V1_HealthReply(serializedBytes: client.call(PolicyMethod.health.fullName, Recr1_V1_HealthRequest()).payload)
        XCTAssertEqual(health.status, .serving)
        XCTAssertEqual(health.requestsServed, 1, "the Info call before")
    }

    func testSocketFileIsOwnerOnly() throws {
        let (daemon, url) = try startDaemon()
        defer { daemon.stop() }
        let path = String(url.dropFirst("ipc://".count))
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        let directory = try FileManager.default.attributesOfItem(atPath: (path as NSString).deletingLastPathComponent)
        XCTAssertEqual((directory[.posixPermissions] as? NSNumber)?.intValue, 0o700)
    }

    func testBadFramesThenAValidRequest() throws {
        let (daemon, url) = try startDaemon { $0.maxMessageBytes = 4096 }
        defer { daemon.stop() }
        let client = try TestRequester(dial: url)

        let garbage = try Recr1_V1_Reply(serializedBytes: client.roundtrip(Data("not a protobuf \u{1}\u{2}\u{ff}".utf8)))
        XCTAssertEqual(garbage.status.code, .invalidArgument)

        var request = Recr1_V1_Request()
        request.method = PolicyMethod.info.fullName
        request.payload = Data(repeating: 7, count: 200)
        let whole = try request.serializedData()
        let truncated = try Recr1_V1_Reply(serializedBytes: client.roundtrip(whole.prefix(whole.count / 2)))
        XCTAssertEqual(truncated.status.code, .invalidArgument)

        let empty = try Recr1_V1_Reply(serializedBytes: client.roundtrip(Data()))
        XCTAssertEqual(empty.status.code, .invalidArgument)
        XCTAssertEqual(empty.status.field, "method")

        let oversized = try Recr1_V1_Reply(serializedBytes: client.roundtrip(Data(repeating: 0x41, count: 5000)))
        XCTAssertEqual(oversized.status.code, .invalidArgument)
        XCTAssertEqual(oversized.status.field, "max_message_bytes")

        let unknown = try client.call("recr1.v1.Policy/Frobnicate", Recr1_V1_InfoRequest())
        XCTAssertEqual(unknown.status.code, .unimplemented)

        let noModel = try client.call(PolicyMethod.generate.fullName, Recr1_V1_GenerateRequest())
        XCTAssertEqual(noModel.status.code, .failedPrecondition)
        XCTAssertTrue(noModel.status.message.contains("Generate"))
        let update = try client.call(PolicyMethod.update.fullName, Recr1_V1_UpdateRequest())
        XCTAssertEqual(update.status.code, .failedPrecondition)
        XCTAssertTrue(update.status.message.contains("Update"))

        let ok = try client.call(PolicyMethod.info.fullName, Recr1_V1_InfoRequest(), id: 3)
        XCTAssertEqual(ok.status.code, .ok)
        XCTAssertEqual(ok.requestID, 3)
    }

    func testConcurrentClientsAreServedTogether() throws {
        // Each request spends 1 s in the handler: three clients at once must all be inside together.
        let stats = RequestStats()
        let path = temporarySocketPath()
        var config = ServerConfig()
        config.listen = ["ipc://\(path)"]
        config.workers = 3
        config.model = "none"
        let daemon = try Daemon(config: config, handlerDelayMs: 1000, stats: stats)
        try daemon.start()
        defer { daemon.stop() }
        let clients = try (0..<3).map { _ in try TestRequester(dial: "ipc://\(path)") }
        let results = Locked([StatusCode](repeating: .unknown, count: 3))
        let done = DispatchGroup()
        for index in 0..<3 {  // threads of their own: concurrentPerform would run only one per core
            done.enter()
            Thread.detachNewThread {
                let code = (try? clients[index].call(PolicyMethod.health.fullName, Recr1_V1_HealthRequest()).status.code) ?? .unknown
                results.update { $0[index] = code }
                done.leave()
            }
        }
        XCTAssertEqual(done.wait(timeout: .now() + 30), .success)
        XCTAssertEqual(results.value, [.ok, .ok, .ok])
        XCTAssertEqual(stats.snapshot.peakInFlight, 3)
    }

    func testStopAnswersTheRequestInFlight() throws {
        let (daemon, url) = try startDaemon(delayMs: 800)
        let client = try TestRequester(dial: url)
        let reply = Locked<Recr1_V1_Reply?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let answer = try? client.call(PolicyMethod.info.fullName, Recr1_V1_InfoRequest(), id: 77)
            reply.update { $0 = answer }
            done.signal()
        }
        Thread.sleep(forTimeInterval: 0.3)  // the request is now inside the handler
        daemon.stop()
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(reply.value?.status.code, .ok)
        XCTAssertEqual(reply.value?.requestID, 77)
        // The listener is gone after stop.
        XCTAssertFalse(FileManager.default.fileExists(atPath: String(url.dropFirst("ipc://".count))))
    }

    func testTokenOverTheWire() throws {
        let tokenPath = NSTemporaryDirectory() + "recr1-token-\(UUID().uuidString)"
        try "hunter2\n".write(toFile: tokenPath, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: tokenPath) }
        let (daemon, url) = try startDaemon { $0.tokenFile = tokenPath }
        defer { daemon.stop() }
        let client = try TestRequester(dial: url)
        XCTAssertEqual(try client.call(PolicyMethod.info.fullName, Recr1_V1_InfoRequest()).status.code, .unauthenticated)
        var request = Recr1_V1_Request()
        request.method = PolicyMethod.info.fullName
        request.authToken = "hunter2"
        let reply = try Recr1_V1_Reply(serializedBytes: client.roundtrip(request.serializedData()))
        XCTAssertEqual(reply.status.code, .ok)
        XCTAssertTrue(try Recr1_V1_InfoReply(serializedBytes: reply.payload).authRequired)
    }

    func testListenFailureIsAClearError() throws {
        var config = ServerConfig()
        config.listen = ["ipc:///proc/no-such-dir/x.sock"]
        config.model = "none"
        let daemon = try Daemon(config: config)
        XCTAssertThrowsError(try daemon.start()) { error in
            XCTAssertTrue("\(error)".contains("/proc/no-such-dir"), "\(error)")
        }
    }
}

final class SystemTests: XCTestCase {
    override class func setUp() { TestLogging.quiet }

    func testBLASLoadsWithThePreferredCoreAndMultiplies() throws {
        try BLAS.load()
        if let preferred = BLAS.preferredCore, ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == preferred {
            XCTAssertEqual(BLAS.core.lowercased(), preferred.lowercased())
        }
        // [1 2 3; 4 5 6] x [1 0; 0 1; 1 1] = [4 5; 10 11]
        let a: [Float] = [1, 2, 3, 4, 5, 6], b: [Float] = [1, 0, 0, 1, 1, 1]
        var c = [Float](repeating: -1, count: 4)
        BLAS.sgemm(transA: false, transB: false, m: 2, n: 2, k: 3, a: a, lda: 3, b: b, ldb: 2, c: &c, ldc: 2)
        XCTAssertEqual(c, [4, 5, 10, 11])
        // op(B) = B^T: [1 2 3; 4 5 6] x [1 2 3; 4 5 6]^T = [14 32; 32 77]
        BLAS.sgemm(transA: false, transB: true, m: 2, n: 2, k: 3, a: a, lda: 3, b: a, ldb: 3, c: &c, ldc: 2)
        XCTAssertEqual(c, [14, 32, 32, 77])
    }

    func testSdNotifySendsToNotifySocket() throws {
        let path = NSTemporaryDirectory() + "recr1-notify-\(UUID().uuidString.prefix(8)).sock"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd); unlink(path) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            path.utf8CString.withUnsafeBytes { raw.copyMemory(from: $0) }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)

        setenv("NOTIFY_SOCKET", path, 1)
        defer { unsetenv("NOTIFY_SOCKET") }
        XCTAssertTrue(Systemd.notify("READY=1"))
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        XCTAssertEqual(String(decoding: buffer.prefix(max(0, count)), as: UTF8.self), "READY=1")

        unsetenv("NOTIFY_SOCKET")
        XCTAssertFalse(Systemd.notify("READY=1"), "no NOTIFY_SOCKET: nothing sent")
    }
}
