import XCTest

@testable import RecR1Model
@testable import RecR1Policy

/// Several Generate requests in one pass: each keeps its own settings, seed streams, limits and stop signal.
final class GeneratorTests: EngineTestCase {
    let end: Int32 = 0

    func generator(_ model: Decoder) -> Generator {
        Generator(decoder: model, endTokens: [end]) { tokens in tokens.map { "<\($0)>" }.joined() }
    }

    func settings(temperature: Float, seed: UInt64?, maxNewTokens: Int, topK: Int = 0) -> SamplingSettings {
        var s = SamplingSettings()
        s.temperature = temperature
        s.seed = seed
        s.maxNewTokens = maxNewTokens
        s.topK = topK
        return s
    }

    func requests() -> [Generator.Request] {
        var stopping = settings(temperature: 1, seed: 5, maxNewTokens: 20)
        stopping.stopTokenIds = [7, 9, 11, 13]
        stopping.stopStrings = ["<21>"]
        return [
            .init(prompts: [[3, 17, 42], [29, 49, 5, 7, 8]], n: 3, settings: settings(temperature: 1, seed: 7, maxNewTokens: 9)),
            .init(prompts: [[11, 2]], n: 1, settings: settings(temperature: 0, seed: nil, maxNewTokens: 5)),
            .init(prompts: [[5, 6, 7, 8, 9, 10]], n: 2, settings: settings(temperature: 0.7, seed: 11, maxNewTokens: 12, topK: 5)),
            .init(prompts: [[1, 2, 3], [4]], n: 4, settings: stopping),
        ]
    }

    func testBatchedRequestsGiveWhatEachGivesAlone() {
        let model = DecoderTests.randomModel(seed: 81, qkvBias: true, tied: false)
        let generator = generator(model)
        let requests = requests()
        let together = generator.generate(requests)
        XCTAssertEqual(together.count, requests.count)
        for (r, request) in requests.enumerated() {
            let alone = generator.generate(prompts: request.prompts, n: request.n, settings: request.settings)
            XCTAssertEqual(together[r].map { $0.map(\.tokens) }, alone.map { $0.map(\.tokens) }, "request \(r)")
            XCTAssertEqual(together[r].map { $0.map(\.finish) }, alone.map { $0.map(\.finish) }, "request \(r)")
            for (batched, single) in zip(together[r].joined(), alone.joined()) {
                XCTAssertLessThan(maxAbsDifference(batched.logprobs, single.logprobs), 1e-4, "request \(r)")
            }
            XCTAssertEqual(together[r].count, request.prompts.count)
            for completions in together[r] {
                XCTAssertEqual(completions.count, request.n)
                for completion in completions {
                    XCTAssertLessThanOrEqual(completion.tokens.count, request.settings.maxNewTokens, "request \(r)")
                    if completion.finish == .length { XCTAssertEqual(completion.tokens.count, request.settings.maxNewTokens, "request \(r)") }
                }
            }
        }
        // The greedy request's completion is its argmax chain; the sampled ones actually differ across samples.
        XCTAssertGreaterThan(Set(together[0][0].map(\.tokens)).count, 1)
        // The stopping request ends on its stop ids and string, and not one of the others does.
        let stopped = together[3].joined()
        XCTAssertTrue(stopped.contains { $0.finish == .stop && [7, 9, 11, 13].contains($0.tokens.last!) })
        XCTAssertTrue(together[0].joined().allSatisfy { $0.finish == .length || $0.tokens.last == end })
    }

    func testEachRequestIsReportedOnceAsSoonAsItIsDone() {
        let model = DecoderTests.randomModel(seed: 83)
        let generator = generator(model)
        var requests = requests()
        requests[1].settings.maxNewTokens = 2   // done long before the others
        requests[1].settings.stopTokenIds = []
        var order: [Int] = []
        var reported: [Int: [[Completion]]] = [:]
        let together = generator.generate(requests) { r, completions in
            order.append(r)
            reported[r] = completions
        }
        XCTAssertEqual(order.sorted(), [0, 1, 2, 3], "each request once")
        XCTAssertEqual(order.first, 1, "the two-token request is reported first")
        for r in requests.indices { XCTAssertEqual(reported[r], together[r]) }
    }

    func testARequestToldToStopEndsAndTheOthersGoOn() {
        let model = DecoderTests.randomModel(seed: 82)
        let generator = generator(model)
        var asked = 0
        var requests = requests()
        requests[2].shouldStop = { asked += 1; return asked >= 3 }  // stop after its third token
        let together = generator.generate(requests)
        for completion in together[2].joined() {
            XCTAssertLessThanOrEqual(completion.tokens.count, 3)
            XCTAssertEqual(completion.finish, completion.tokens.last == end ? .stop : .length)
        }
        XCTAssertTrue(together[2].joined().contains { $0.tokens.count == 3 })
        for r in [0, 1, 3] {
            let alone = generator.generate(prompts: requests[r].prompts, n: requests[r].n, settings: requests[r].settings)
            XCTAssertEqual(together[r].map { $0.map(\.tokens) }, alone.map { $0.map(\.tokens) }, "request \(r)")
        }
        XCTAssertTrue(together[0].joined().contains { $0.tokens.count == 9 }, "the others ran to their own limits")
    }
}
