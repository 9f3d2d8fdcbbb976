import ArgumentParser
import Foundation
import Logging
import RecR1Service

@main
struct Recr1d: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recr1d",
        abstract: "Trains a language-model policy by reinforcement learning from recommender feedback.",
        version: RecR1Version.current,
        subcommands: [Serve.self, Train.self, Config.self, Bench.self],
        defaultSubcommand: Serve.self
    )
}
