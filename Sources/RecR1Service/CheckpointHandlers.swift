import Foundation
import RecR1Policy
import RecR1Proto

/// SaveCheckpoint, LoadCheckpoint and Export. Paths are the daemon's: relative ones are under the state
/// directory, so that a client need not know where recr1d runs; no path may leave the state directory
/// and `allowed_dirs` (RequestPaths).
struct CheckpointHandlers {
    let policy: Policy
    let paths: RequestPaths

    init(policy: Policy, config: ServerConfig) {
        self.policy = policy
        paths = config.requestPaths()
    }

    func register(in table: inout MethodTable) {
        table.register(PolicyMethod.saveCheckpoint.fullName, save)
        table.register(PolicyMethod.loadCheckpoint.fullName, load)
        table.register(PolicyMethod.export.fullName, export)
    }

    func save(_ request: Recr1_V1_SaveCheckpointRequest, _: CallContext) throws -> Recr1_V1_SaveCheckpointReply {
        let step = policy.trainer?.optimizer.step ?? 0
        let path = try paths.resolve(request.path.isEmpty ? "checkpoints/step-\(step)" : request.path, field: "path")
        let saved: (bytes: Int, step: Int, version: UInt64)
        do {
            saved = try policy.saveCheckpoint(to: path)
        } catch {
            throw RPCError(.failedPrecondition, field: "path", "cannot save a checkpoint at \(path): \(error)")
        }
        var reply = Recr1_V1_SaveCheckpointReply()
        reply.path = path
        reply.step = UInt64(saved.step)
        reply.policyVersion = saved.version
        reply.bytes = UInt64(saved.bytes)
        return reply
    }

    func load(_ request: Recr1_V1_LoadCheckpointRequest, _: CallContext) throws -> Recr1_V1_LoadCheckpointReply {
        if request.path.isEmpty { throw RPCError.invalidArgument("path", "name the checkpoint directory") }
        let path = try paths.resolve(request.path, field: "path")
        if !FileManager.default.fileExists(atPath: path) && !FileManager.default.fileExists(atPath: path + ".previous") {
            throw RPCError.notFound("path", "no checkpoint at \(path)")
        }
        let loaded: (step: Int, version: UInt64, referenceIsBase: Bool)
        do {
            loaded = try policy.loadCheckpoint(from: path, asReference: request.asReference)
        } catch {
            throw RPCError(.failedPrecondition, field: "path", "cannot load \(path): \(error)")
        }
        var reply = Recr1_V1_LoadCheckpointReply()
        reply.path = path
        reply.step = UInt64(loaded.step)
        reply.policyVersion = loaded.version
        reply.referenceIsBase = loaded.referenceIsBase
        return reply
    }

    func export(_ request: Recr1_V1_ExportRequest, _: CallContext) throws -> Recr1_V1_ExportReply {
        if request.directory.isEmpty { throw RPCError.invalidArgument("directory", "name the directory to export to") }
        let directory = try paths.resolve(request.directory, field: "directory")
        let files: [String]
        do {
            switch request.format {
            case .exportMergedSafetensors: files = try policy.exportMerged(to: directory)
            case .exportPeftAdapter: files = try policy.exportAdapter(to: directory)
            case .UNRECOGNIZED(let value):
                throw RPCError.invalidArgument("format", "\(value) is not MERGED_SAFETENSORS (0) or PEFT_ADAPTER (1)")
            }
        } catch let error as RPCError {
            throw error
        } catch {
            throw RPCError(.failedPrecondition, field: "directory", "cannot export to \(directory): \(error)")
        }
        var reply = Recr1_V1_ExportReply()
        reply.directory = directory
        reply.files = files
        return reply
    }
}
