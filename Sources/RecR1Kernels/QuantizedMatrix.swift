import CRecR1Kernels

/// A weight matrix kept in a GGUF block format (Q4_0, Q4_1, Q8_0), [rows × cols], each row cols / 32
/// blocks. Decoding multiplies by it directly (blocks become fp32 in registers), reading 5–6× fewer bytes
/// than the fp32 copy; the numbers are those of the dequantised matrix.
public struct QuantizedMatrix {
    public enum BlockType: Int32 { case q4_0 = 2, q4_1 = 3, q8_0 = 8 }

    public let type: BlockType
    public let rows: Int
    public let cols: Int
    public let blocks: [UInt8]

    public init(type: BlockType, rows: Int, cols: Int, blocks: [UInt8]) {
        precondition(cols % 32 == 0 && blocks.count == rows * Self.rowBytes(type, cols))
        self.type = type
        self.rows = rows
        self.cols = cols
        self.blocks = blocks
    }

    public static func rowBytes(_ type: BlockType, _ cols: Int) -> Int { cols / 32 * Int(recr1_block_bytes(type.rawValue)) }
}
