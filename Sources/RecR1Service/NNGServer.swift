import CNNG
import Foundation
import Logging

/// An nng failure, with nng's own words for it.
public struct NNGError: Error, CustomStringConvertible {
    public let operation: String
    public let code: Int32
    public var description: String { "\(operation): \(String(cString: nng_strerror(code)))" }

    static func check(_ rv: Int32, _ operation: @autoclosure () -> String) throws {
        if rv != 0 { throw NNGError(operation: operation(), code: rv) }
    }
}

/// The transport: an nng REP socket listening on one or more addresses, serving requests concurrently
/// through `workers` contexts, one thread each. It moves frames only; what they mean is the handler's
/// business (`Dispatcher.handle`).
///
/// Stopping is graceful: `stop()` cancels the receives of idle workers, lets busy workers send their
/// reply, joins every thread and only then closes the socket.
public final class NNGServer {
    public typealias FrameHandler = (Data) -> Data

    private var socket = nng_socket()
    private var addresses: [ListenAddress] = []
    private var listeners: [nng_listener] = []
    private var workers: [Worker] = []
    private var watchdog: ListenerWatchdog?
    /// Connections that reached the socket; outlives the socket, whose notification adds to it.
    private let arrivals = ListenerWatchdog.Arrivals()
    private var maxFrameBytes = 0
    private var tlsCertKeyFile: String?
    private let logger: Logger

    public init(logger: Logger = Logger(label: "recr1d.transport")) {
        self.logger = logger
    }

    /// Opens the socket, starts every listener (failing as a whole if one cannot start), the workers, and
    /// the watchdog that starts a listener again when libnng stops it accepting.
    public func start(addresses: [ListenAddress], workers count: Int, maxFrameBytes: Int, tlsCertKeyFile: String? = nil,
                      handler: @escaping FrameHandler) throws {
        self.tlsCertKeyFile = tlsCertKeyFile
        self.maxFrameBytes = maxFrameBytes
        self.addresses = addresses
        try NNGError.check(nng_rep0_open(&socket), "open REP socket")
        do {
            try NNGError.check(nng_socket_set_size(socket, NNG_OPT_RECVMAXSZ, maxFrameBytes), "set recv-size-max")
            try NNGError.check(nng_pipe_notify(socket, NNG_PIPE_EV_ADD_POST, { _, _, counter in
                Unmanaged<ListenerWatchdog.Arrivals>.fromOpaque(counter!).takeUnretainedValue().add()
            }, Unmanaged.passUnretained(arrivals).toOpaque()), "watch connections")
            for address in addresses { listeners.append(try listen(on: address)) }
            for index in 0..<count {
                let worker = try Worker(socket: socket, index: index, handler: handler, logger: logger)
                workers.append(worker)
                worker.start()
            }
        } catch {
            stop(linger: 0)
            throw error
        }
        // Weak: the server owns the watchdog, and a strong capture would keep the server alive for ever.
        let watchdog = ListenerWatchdog(arrivals: arrivals, addresses: addresses, timing: .init(), logger: logger) { [weak self] index in
            self?.relisten(index)
        }
        self.watchdog = watchdog
        watchdog.start()
    }

    /// Closes listener `index` and starts a new one on its address (the watchdog's thread).
    private func relisten(_ index: Int) {
        nng_listener_close(listeners[index])
        do {
            listeners[index] = try listen(on: addresses[index])
        } catch {
            logger.error("cannot listen on \(addresses[index]) again: \(error)")
        }
    }

    private func listen(on address: ListenAddress) throws -> nng_listener {
        var listener = nng_listener()
        if case .ipc(let path) = address.kind { try Self.prepareSocketDirectory(for: path) }
        try NNGError.check(nng_listener_create(&listener, socket, address.url), "listen on \(address)")
        var started = false
        defer { if !started { nng_listener_close(listener) } }
        _ = nng_listener_set_size(listener, NNG_OPT_RECVMAXSZ, maxFrameBytes)
        if case .tls = address.kind {
            guard let certKey = tlsCertKeyFile else {
                throw ConfigError(key: "tls_cert_key_file", "\(address) needs a certificate and key (a PEM file holding both)")
            }
            var tls: OpaquePointer?
            try NNGError.check(nng_tls_config_alloc(&tls, NNG_TLS_MODE_SERVER), "TLS configuration")
            defer { nng_tls_config_free(tls) }
            guard nng_tls_config_cert_key_file(tls, certKey, nil) == 0 else {
                throw ConfigError(key: "tls_cert_key_file", "cannot use \(certKey) as a PEM certificate and key")
            }
            try NNGError.check(nng_listener_set_ptr(listener, NNG_OPT_TLS_CONFIG, UnsafeMutableRawPointer(tls)), "TLS on \(address)")
        }
        if case .ipc = address.kind {
            try NNGError.check(nng_listener_set_int(listener, NNG_OPT_IPC_PERMISSIONS, 0o600),
                               "make \(address) owner-only")
        }
        try NNGError.check(nng_listener_start(listener, 0), "listen on \(address)")
        started = true
        logger.info("listening on \(address)")
        return listener
    }

    /// Creates the socket's directory owner-only when it does not exist (an existing one is left alone).
    static func prepareSocketDirectory(for path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if FileManager.default.fileExists(atPath: directory) { return }
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw ConfigError(key: "listen", "cannot create \(directory): \(error.localizedDescription)")
        }
    }

    /// Stops accepting, lets in-flight requests finish and answer, then closes the socket. `linger`
    /// leaves the last replies time to leave the process before the connections close.
    public func stop(linger: TimeInterval = 0.2) {
        watchdog?.stop()
        watchdog = nil
        for worker in workers { worker.requestStop() }
        for worker in workers { worker.join() }
        if !workers.isEmpty && linger > 0 { Thread.sleep(forTimeInterval: linger) }
        workers.removeAll()
        if socket.id != 0 {
            nng_close(socket)
            socket = nng_socket()
        }
        listeners.removeAll()
    }

    deinit { stop(linger: 0) }
}

/// One context of the REP socket and the thread that serves it: receive, handle, send, repeat.
private final class Worker {
    private enum State { case idle, receiving, busy }

    private var context = nng_ctx()
    private var aio: OpaquePointer?
    private let index: Int
    private let handler: NNGServer.FrameHandler
    private let logger: Logger
    private let lock = NSLock()
    private var state = State.idle
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)
    private var thread: Thread?

    init(socket: nng_socket, index: Int, handler: @escaping NNGServer.FrameHandler, logger: Logger) throws {
        self.index = index
        self.handler = handler
        self.logger = logger
        try NNGError.check(nng_ctx_open(&context, socket), "open context")
        do {
            try NNGError.check(nng_aio_alloc(&aio, nil, nil), "allocate aio")
        } catch {
            nng_ctx_close(context)
            throw error
        }
    }

    func start() {
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "recr1d-worker-\(index)"
        thread.stackSize = 8 << 20
        self.thread = thread
        thread.start()
    }

    /// A receive in progress is cancelled; a request being handled is finished and answered first.
    func requestStop() {
        lock.withLock {
            stopping = true
            if state == .receiving { nng_aio_cancel(aio) }
        }
    }

    func join() {
        if thread != nil { finished.wait() }
        thread = nil
    }

    private func run() {
        while true {
            let mayReceive: Bool = lock.withLock {
                if stopping { return false }
                state = .receiving
                nng_ctx_recv(context, aio)
                return true
            }
            if !mayReceive { break }
            nng_aio_wait(aio)
            lock.withLock { state = .busy }

            let received = nng_aio_result(aio)
            if received != 0 {
                if received == Int32(NNG_ECANCELED.rawValue) || received == Int32(NNG_ECLOSED.rawValue) { break }
                logger.warning("worker \(index): receive failed: \(String(cString: nng_strerror(received)))")
                continue
            }
            guard let message = nng_aio_get_msg(aio) else { continue }
            let request = Data(bytes: nng_msg_body(message), count: nng_msg_len(message))
            let reply = handler(request)

            // Reuse the message: its header holds the route back to the requester.
            nng_msg_clear(message)
            let appended = reply.withUnsafeBytes { nng_msg_append(message, $0.baseAddress, $0.count) }
            if appended != 0 {
                logger.error("worker \(index): cannot build reply: \(String(cString: nng_strerror(appended)))")
                nng_msg_free(message)
                continue
            }
            nng_aio_set_msg(aio, message)
            nng_ctx_send(context, aio)
            nng_aio_wait(aio)
            let sent = nng_aio_result(aio)
            if sent != 0 {
                // On failure the message is still ours.
                nng_msg_free(message)
                logger.warning("worker \(index): reply not sent: \(String(cString: nng_strerror(sent)))")
            }
        }
        lock.withLock { state = .idle }
    }

    deinit {
        nng_aio_free(aio)
        nng_ctx_close(context)
    }
}
