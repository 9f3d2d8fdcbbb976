// swift-tools-version:5.9
import PackageDescription

let package = Package(
    name: "recr1",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "recr1d", targets: ["recr1d"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", exact: "0.6.0"),
    ],
    targets: [
        // System C libraries (Debian packages).
        .systemLibrary(name: "CNNG", providers: [.apt(["libnng-dev"])]),
        // Header only: OpenBLAS is dlopen'ed by CRecR1Support after OPENBLAS_CORETYPE is chosen,
        // because the library reads that variable in its load-time constructor (see docs/architecture.md).
        .systemLibrary(name: "COpenBLAS", providers: [.apt(["libopenblas-dev"])]),
        // Small C glue: CPU features, the OpenBLAS loader, sd_notify.
        .target(
            name: "CRecR1Support",
            dependencies: ["COpenBLAS"],
            cSettings: [.unsafeFlags(["-O2"])],
            linkerSettings: [.linkedLibrary("dl")]
        ),

        // The contract: code generated from proto/ by scripts/gen-proto.sh (committed).
        .target(
            name: "RecR1Proto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        // Hot loops in C with run-time instruction-set dispatch.
        .target(name: "CRecR1Kernels", cSettings: [.unsafeFlags(["-O3", "-ffast-math"])]),
        // oneDNN's matmul (fp32, and bf16 on AMX) behind a cblas-like C function (Debian's libdnnl-dev).
        // Loaded at run time (dlopen), so that its OpenMP threads can be told to wait passively first.
        .target(name: "CRecR1DNNL", cSettings: [.unsafeFlags(["-O2"])], linkerSettings: [.linkedLibrary("dl")]),
        // Numeric kernels: the matmul seam (OpenBLAS or oneDNN, or the C kernel for few rows) and element-wise work.
        .target(name: "RecR1Kernels", dependencies: ["CRecR1Support", "CRecR1Kernels", "CRecR1DNNL"]),
        // Model file formats: GGUF, safetensors.
        .target(name: "RecR1Formats"),
        // The decoder: config, weights, KV cache, forward pass.
        .target(name: "RecR1Model", dependencies: ["RecR1Formats", "RecR1Kernels"]),
        // Sampling, generation and scoring over the decoder.
        .target(name: "RecR1Policy", dependencies: ["RecR1Model", "RecR1Tokenizer", "RecR1Kernels", "RecR1Learning"]),
        // Learning: the GRPO / DPO / SFT losses, AdamW, clipping, schedules, the trainer, checkpoints.
        .target(name: "RecR1Learning", dependencies: ["RecR1Model", "RecR1Kernels", "RecR1Formats"]),
        // Byte-level BPE tokenizers and chat templates.
        .target(name: "RecR1Tokenizer", dependencies: ["RecR1Formats"]),
        // Transport (nng), envelope handling, handlers, configuration, systemd.
        .target(
            name: "RecR1Service",
            dependencies: [
                "CNNG", "CRecR1Support", "RecR1Proto", "RecR1Kernels", "RecR1Formats", "RecR1Policy", "RecR1Tokenizer",
                "RecR1Learning", "RecR1Model",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]
        ),
        .executableTarget(
            name: "recr1d",
            dependencies: [
                "RecR1Service", "RecR1Policy", "RecR1Model", "RecR1Tokenizer", "RecR1Formats", "RecR1Kernels", "RecR1Learning",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "RecR1EngineTests",
            dependencies: ["RecR1Formats", "RecR1Tokenizer", "RecR1Kernels", "RecR1Model", "RecR1Policy", "RecR1Learning"],
            exclude: ["Golden"]
        ),
        .testTarget(
            name: "RecR1ServiceTests",
            dependencies: [
                "RecR1Service", "CNNG", "CRecR1Support", "RecR1Proto", "RecR1Kernels", "RecR1Formats", "RecR1Policy", "RecR1Tokenizer",
                "RecR1Learning", "RecR1Model",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
