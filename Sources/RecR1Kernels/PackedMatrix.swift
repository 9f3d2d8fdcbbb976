import CRecR1DNNL

/// A weight matrix W [outDim × inDim] copied into the blocked layout oneDNN's matmul reads fastest (bf16 or
/// fp32), for products of many rows: forward x · Wᵀ and backward x · W. Each role is packed on its own;
/// packing again after W changes writes into the same memory.
public final class PackedMatrix {
    public enum Role: Int32 {
        case forward = 0   // y[rows × outDim] = x[rows × inDim] · Wᵀ
        case backward = 1  // y[rows × inDim] = x[rows × outDim] · W
    }

    public struct PackError: Error, CustomStringConvertible {
        public let description: String
    }

    fileprivate let handle: OpaquePointer
    public let outDim: Int, inDim: Int
    public let bf16: Bool
    /// Per role, the version of the weights the packed copy holds (nil: never packed); kept by the owner.
    public var packedVersion: [Role: Int] = [:]

    public init?(outDim: Int, inDim: Int, bf16: Bool) {
        guard let handle = recr1_packed_create(Int32(outDim), Int32(inDim), bf16 ? 1 : 0) else { return nil }
        self.handle = handle
        (self.outDim, self.inDim, self.bf16) = (outDim, inDim, bf16)
    }

    deinit { recr1_packed_destroy(handle) }

    /// Packs `role` from W (outDim × inDim, row-major).
    public func pack(_ w: UnsafePointer<Float>, role: Role) throws {
        var message = [CChar](repeating: 0, count: 256)
        if recr1_packed_pack(handle, role.rawValue, w, &message, Int32(message.count)) != 0 {
            throw PackError(description: String(cString: message))
        }
    }

    /// Bytes held by the packed copies.
    public var bytes: Int { Int(recr1_packed_bytes(handle)) }

    /// y = x · op(W) + beta · y for `rows` rows (see `Role`); false, with the message, when oneDNN failed.
    func product(_ role: Role, rows: Int, x: UnsafePointer<Float>, ldx: Int, beta: Float, y: UnsafeMutablePointer<Float>,
                 ldy: Int, error: inout String?) -> Bool {
        var message = [CChar](repeating: 0, count: 256)
        let status = recr1_packed_linear(handle, role.rawValue, Int32(rows), x, Int32(ldx), beta, y, Int32(ldy), &message,
                                         Int32(message.count))
        if status != 0 { error = String(cString: message) }
        return status == 0
    }
}
