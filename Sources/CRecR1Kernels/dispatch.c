#include "recr1_kernels.h"

#include <stdlib.h>
#include <string.h>

// One answer for every kernel: AVX-512 where the CPU has it, unless RECR1_KERNELS=portable or =avx2 asks
// for the plain C paths or the AVX2 ones (so that a machine with AVX-512 can test the code that machines
// without it run).
int recr1_kernels_avx512(void) {
    static int cached = -1;
    if (cached < 0) {
        const char *choice = getenv("RECR1_KERNELS");
        int portable = choice && (strcmp(choice, "portable") == 0 || strcmp(choice, "avx2") == 0);
#if defined(__x86_64__)
        cached = !portable && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("f16c");
#else
        (void)portable;
        cached = 0;
#endif
    }
    return cached;
}
