import Foundation
import Logging
import RecR1Kernels

/// recr1d assembled: configuration -> BLAS -> Policy handlers -> dispatcher -> nng transport.
/// `recr1d serve` drives it with signals; tests start it in-process.
public final class Daemon {
    public let config: ServerConfig
    public let addresses: [ListenAddress]
    private let service: PolicyService
    private let dispatcher: Dispatcher
    private let server: NNGServer
    private let logger: Logger

    /// Checks the configuration and loads what serving needs; listens only in `start`.
    public init(config: ServerConfig, handlerDelayMs: Int = 0, stats: RequestStats = RequestStats(),
                logger: Logger = Logger(label: "recr1d")) throws {
        self.config = config
        self.logger = logger
        addresses = try config.listenAddresses()
        var options = Dispatcher.Options(maxMessageBytes: config.maxMessageBytes, authToken: try config.authToken())
        options.handlerDelayMs = handlerDelayMs

        try BLAS.load(threads: config.blasThreads > 0 ? config.blasThreads : ProcessInfo.processInfo.activeProcessorCount)
        if BLAS.wasPreloaded {
            logger.warning("OpenBLAS was loaded before recr1d could choose its kernels; it runs \(BLAS.core)")
        }
        logger.info("OpenBLAS core \(BLAS.core), \(BLAS.threads) threads; CPU: \(CPUFeatures.current)")

        service = PolicyService(config: config, listening: addresses, stats: stats)
        dispatcher = Dispatcher(table: service.methodTable(), options: options, stats: stats)
        server = NNGServer()
    }

    public func start() throws {
        try server.start(addresses: addresses, workers: config.workers, maxFrameBytes: config.transportMaxBytes,
                         handler: dispatcher.handle(frame:))
        logger.info("recr1d \(RecR1Version.current) serving with \(config.workers) workers")
    }

    /// Stops accepting, answers the requests in flight, closes the sockets.
    public func stop() {
        service.markStopping()
        server.stop()
        logger.info("stopped")
    }
}
