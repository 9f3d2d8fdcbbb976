import CNNG
import Foundation
import Logging

/// Keeps the listeners of a socket accepting. libnng 1.5.2 (Debian 12's) stops handing a listener's new
/// connections to its socket, for good, once a peer hangs up during the SP handshake (nng issue #1518, fixed
/// in 1.6.0): a port probe or a client killed while connecting makes the daemon deaf while the process looks
/// healthy. So now and then the watchdog connects to each listener as a client would; when that connection
/// never reaches the socket (twice in a row, so that a slow moment is not taken for the bug), it starts the
/// listener again.
final class ListenerWatchdog {
    struct Timing {
        /// Between checks of every listener.
        var interval: TimeInterval = 5
        /// How long a check's connection may take to reach the socket.
        var patience: TimeInterval = 3
    }

    /// Counts connections that reach the socket (nng's pipe-added notification).
    final class Arrivals {
        private let lock = NSLock()
        private var count = 0
        var value: Int { lock.withLock { count } }
        func add() { lock.withLock { count += 1 } }
    }

    private let arrivals: Arrivals
    private let addresses: [ListenAddress]
    private let restart: (Int) -> Void
    private let timing: Timing
    private let logger: Logger
    private let stopped = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private var thread: Thread?

    /// `arrivals` must be the counter the socket's pipe notification adds to; `restart(i)` starts listener i
    /// (on `addresses[i]`) again.
    init(arrivals: Arrivals, addresses: [ListenAddress], timing: Timing, logger: Logger, restart: @escaping (Int) -> Void) {
        self.arrivals = arrivals
        self.addresses = addresses
        self.timing = timing
        self.logger = logger
        self.restart = restart
    }

    func start() {
        let thread = Thread { [self] in
            var misses = [Int](repeating: 0, count: addresses.count)
            while stopped.wait(timeout: .now() + timing.interval) == .timedOut {
                for (index, address) in addresses.enumerated() {
                    if reaches(address) {
                        misses[index] = 0
                        continue
                    }
                    misses[index] += 1
                    logger.debug("a check's connection to \(address) did not reach the socket (\(misses[index]) in a row)")
                    if misses[index] >= 2 {
                        logger.warning("""
                            \(address) stopped accepting connections (libnng 1.5.2 after a peer hung up during the \
                            handshake, nng issue #1518); listening again
                            """)
                        restart(index)
                        misses[index] = 0
                    }
                }
            }
            finished.signal()
        }
        thread.name = "recr1d-listener-watchdog"
        self.thread = thread
        thread.start()
    }

    func stop() {
        guard thread != nil else { return }
        stopped.signal()
        finished.wait()
        thread = nil
    }

    /// Whether a client connection to `address` reaches the socket within `patience`: any connection that
    /// arrives meanwhile (ours or a real client's) shows that the listener hands connections over.
    private func reaches(_ address: ListenAddress) -> Bool {
        let before = arrivals.value
        var probe = nng_socket()
        guard nng_req0_open(&probe) == 0 else { return true }  // cannot check now; not evidence of the bug
        defer { nng_close(probe) }
        var dialer = nng_dialer()
        guard nng_dialer_create(&dialer, probe, address.url) == 0 else { return true }
        if case .tls = address.kind {
            var tls: OpaquePointer?
            guard nng_tls_config_alloc(&tls, NNG_TLS_MODE_CLIENT) == 0 else { return true }
            defer { nng_tls_config_free(tls) }
            _ = nng_tls_config_auth_mode(tls, NNG_TLS_AUTH_MODE_NONE)  // only whether the connection arrives
            _ = nng_dialer_set_ptr(dialer, NNG_OPT_TLS_CONFIG, UnsafeMutableRawPointer(tls))
        }
        guard nng_dialer_start(dialer, Int32(NNG_FLAG_NONBLOCK)) == 0 else { return true }
        let deadline = Date().addingTimeInterval(timing.patience)
        while Date() < deadline {
            if arrivals.value > before { return true }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return arrivals.value > before
    }
}
