import Foundation
import TOMLKit

/// A configuration problem, naming the key (and the file) it is about.
public struct ConfigError: Error, CustomStringConvertible {
    public let key: String
    public let message: String
    public init(key: String, _ message: String) {
        self.key = key
        self.message = message
    }
    public var description: String { key.isEmpty ? message : "\(key): \(message)" }
}

/// Typed reads from a TOML table that name the offending key, and refuse keys nobody asked for
/// (a misspelt setting should fail loudly, not be silently ignored).
public struct TOMLReader {
    let table: TOMLTable
    let origin: String
    private var known: Set<String> = []

    public init(text: String, origin: String) throws {
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigError(key: "", "\(origin):\(error.source.begin.line):\(error.source.begin.column): \(error.description)")
        }
        self.origin = origin
    }

    public init(file path: String) throws {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(key: "", "cannot read \(path): \(error.localizedDescription)")
        }
        try self.init(text: text, origin: path)
    }

    private mutating func value(_ key: String) -> TOMLValueConvertible? {
        known.insert(key)
        return table[key]
    }

    private func wrongType(_ key: String, _ expected: String, _ value: TOMLValueConvertible) -> ConfigError {
        ConfigError(key: key, "in \(origin): expected \(expected), found \(value.type)")
    }

    public mutating func int(_ key: String, in range: ClosedRange<Int>? = nil) throws -> Int? {
        guard let value = value(key) else { return nil }
        guard let int = value.int else { throw wrongType(key, "an integer", value) }
        if let range, !range.contains(int) {
            throw ConfigError(key: key, "in \(origin): \(int) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        return int
    }

    /// A number (an integer is accepted too), optionally within a range.
    public mutating func double(_ key: String, in range: ClosedRange<Double>? = nil) throws -> Double? {
        guard let value = value(key) else { return nil }
        guard let number = value.double ?? value.int.map(Double.init) else { throw wrongType(key, "a number", value) }
        if let range, !range.contains(number) {
            throw ConfigError(key: key, "in \(origin): \(number) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        return number
    }

    public mutating func string(_ key: String) throws -> String? {
        guard let value = value(key) else { return nil }
        guard let string = value.string else { throw wrongType(key, "a string", value) }
        return string
    }

    public mutating func strings(_ key: String) throws -> [String]? {
        guard let value = value(key) else { return nil }
        guard let array = value.array else { throw wrongType(key, "an array of strings", value) }
        return try array.map { element in
            guard let string = element.string else { throw wrongType(key, "an array of strings", element) }
            return string
        }
    }

    /// An array of tables ([[key]] in TOML), each read by its own reader (which names the key as key[i]).
    public mutating func tables(_ key: String) throws -> [TOMLReader]? {
        guard let value = value(key) else { return nil }
        guard let array = value.array else { throw wrongType(key, "an array of tables ([[\(key)]])", value) }
        return try array.enumerated().map { index, element in
            guard let table = element.table else { throw wrongType("\(key)[\(index)]", "a table", element) }
            return TOMLReader(table: table, origin: "\(origin) [[\(key)]] #\(index + 1)")
        }
    }

    private init(table: TOMLTable, origin: String) {
        self.table = table
        self.origin = origin
    }

    public mutating func bool(_ key: String) throws -> Bool? {
        guard let value = value(key) else { return nil }
        guard let bool = value.bool else { throw wrongType(key, "true or false", value) }
        return bool
    }

    /// Call after every read: any key not read is unknown.
    public func rejectUnknownKeys() throws {
        if let unknown = table.keys.sorted().first(where: { !known.contains($0) }) {
            throw ConfigError(key: unknown, "unknown setting in \(origin) (known: \(known.sorted().joined(separator: ", ")))")
        }
    }
}
