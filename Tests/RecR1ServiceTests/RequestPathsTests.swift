import Foundation
import XCTest
@testable import RecR1Service

/// RequestPaths on real directories and symlinks in a temporary folder.
final class RequestPathsTests: XCTestCase {
    private var root = ""      // holds state/, allowed/, outside/
    private var state = ""
    private var allowed = ""
    private var outside = ""

    override func setUpWithError() throws {
        root = (NSTemporaryDirectory() as NSString).appendingPathComponent("request-paths-\(UUID().uuidString)")
        state = root + "/state"
        allowed = root + "/allowed"
        outside = root + "/outside"
        for dir in [state, allowed, outside] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        root = try XCTUnwrap(RequestPaths.resolveExisting(root))   // /tmp may itself be a symlink
        (state, allowed, outside) = (root + "/state", root + "/allowed", root + "/outside")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: root)
    }

    private func code(_ body: () throws -> String) -> StatusCode? {
        do {
            _ = try body()
            return nil
        } catch let error as RPCError {
            XCTAssertEqual(error.field, "path", "the error names the field")
            XCTAssertTrue(error.message.hasPrefix("path: "), error.message)
            return error.code
        } catch {
            XCTFail("not an RPCError: \(error)")
            return nil
        }
    }

    func testRelativePathsLandInTheStateDir() throws {
        let paths = RequestPaths(stateDir: state)
        XCTAssertEqual(try paths.resolve("checkpoints/step-3", field: "path"), state + "/checkpoints/step-3")
        XCTAssertEqual(try paths.resolve("./a/./b", field: "path"), state + "/a/b")
        XCTAssertEqual(try paths.resolve(state + "/x", field: "path"), state + "/x")
        XCTAssertEqual(try paths.resolve(state, field: "path"), state)
    }

    func testDotDotAbsoluteAndSiblingPrefixesAreRefused() {
        let paths = RequestPaths(stateDir: state)
        XCTAssertEqual(code { try paths.resolve("../x", field: "path") }, .invalidArgument)
        XCTAssertEqual(code { try paths.resolve("a/../../x", field: "path") }, .invalidArgument)
        XCTAssertEqual(code { try paths.resolve(state + "/..", field: "path") }, .invalidArgument)
        XCTAssertEqual(code { try paths.resolve(outside + "/x", field: "path") }, .permissionDenied)
        XCTAssertEqual(code { try paths.resolve("/etc/passwd", field: "path") }, .permissionDenied)
        XCTAssertEqual(code { try paths.resolve("/", field: "path") }, .permissionDenied)
        // "state-other" starts with "state" but is not inside it.
        XCTAssertEqual(code { try paths.resolve(state + "-other/x", field: "path") }, .permissionDenied)
    }

    func testNulEmptyAndOverlongPathsAreInvalid() {
        let paths = RequestPaths(stateDir: state)
        XCTAssertEqual(code { try paths.resolve("a\u{0}b", field: "path") }, .invalidArgument)
        XCTAssertEqual(code { try paths.resolve("", field: "path") }, .invalidArgument)
        XCTAssertEqual(code { try paths.resolve(String(repeating: "n", count: 256), field: "path") }, .invalidArgument)
        XCTAssertNoThrow(try paths.resolve(String(repeating: "n", count: 255), field: "path"))
        let deep = Array(repeating: String(repeating: "d", count: 200), count: 21).joined(separator: "/")
        XCTAssertEqual(code { try paths.resolve(deep, field: "path") }, .invalidArgument)
    }

    func testSymlinksAreFollowedBeforeTheCheck() throws {
        let fm = FileManager.default
        try fm.createSymbolicLink(atPath: state + "/out", withDestinationPath: outside)          // dir link leaving
        try fm.createSymbolicLink(atPath: state + "/in", withDestinationPath: state + "/real")   // dir link staying
        try fm.createDirectory(atPath: state + "/real", withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: state + "/dangling", withDestinationPath: outside + "/not-yet")
        let paths = RequestPaths(stateDir: state)
        XCTAssertEqual(code { try paths.resolve("out/x", field: "path") }, .permissionDenied)
        XCTAssertEqual(code { try paths.resolve("out", field: "path") }, .permissionDenied)
        XCTAssertEqual(code { try paths.resolve("dangling", field: "path") }, .permissionDenied)
        XCTAssertEqual(try paths.resolve("in/ckpt", field: "path"), state + "/real/ckpt")
        // A state dir reached through a symlink is still itself.
        try fm.createSymbolicLink(atPath: root + "/state-link", withDestinationPath: state)
        let linked = RequestPaths(stateDir: root + "/state-link")
        XCTAssertEqual(try linked.resolve(root + "/state-link/a", field: "path"), state + "/a")
        XCTAssertEqual(try linked.resolve("a", field: "path"), state + "/a")
    }

    func testAllowedDirsOpenExactlyThemselves() throws {
        let paths = RequestPaths(stateDir: state, allowedDirs: [allowed, root + "/later"])
        XCTAssertEqual(try paths.resolve(allowed + "/export", field: "path"), allowed + "/export")
        XCTAssertEqual(try paths.resolve(root + "/later/a", field: "path"), root + "/later/a")   // not created yet
        XCTAssertEqual(code { try paths.resolve(outside + "/x", field: "path") }, .permissionDenied)
        XCTAssertEqual(try paths.resolve("rel", field: "path", from: allowed), allowed + "/rel")
        do {
            _ = try paths.resolve(outside, field: "directory")
            XCTFail("outside was allowed")
        } catch let error as RPCError {
            XCTAssertEqual(error.field, "directory")
            XCTAssertTrue(error.message.contains("allowed_dirs"), error.message)
        }
    }
}
