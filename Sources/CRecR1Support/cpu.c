#include "recr1_support.h"

#include <cpuid.h>
#include <stdint.h>
#include <string.h>

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

recr1_cpu_features recr1_cpu_detect(void) {
    recr1_cpu_features f = {0};
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
    memcpy(f.vendor, &b, 4);  // the vendor string is EBX, EDX, ECX
    memcpy(f.vendor + 4, &d, 4);
    memcpy(f.vendor + 8, &c, 4);
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    int osxsave = (c >> 27) & 1;
    int fma = (c >> 12) & 1;
    if (!osxsave) return f;
    uint64_t xcr0 = xgetbv0();
    int ymm_ok = (xcr0 & 0x6) == 0x6;             // SSE + AVX state
    int zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0;  // opmask + ZMM state
    int amx_ok = (xcr0 & 0x60000) == 0x60000;      // XTILECFG + XTILEDATA (the kernel still needs a request)
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
    f.fma = fma && ymm_ok;
    f.avx2 = ((b >> 5) & 1) && ymm_ok;
    f.avx512f = ((b >> 16) & 1) && zmm_ok;
    f.avx512dq = ((b >> 17) & 1) && zmm_ok;
    f.avx512bw = ((b >> 30) & 1) && zmm_ok;
    f.avx512vl = ((b >> 31) & 1) && zmm_ok;
    f.amx_bf16 = ((d >> 22) & 1) && amx_ok;
    f.amx_tile = ((d >> 24) & 1) && amx_ok;
    unsigned a1, b1, c1, d1;
    if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) f.avx512_bf16 = ((a1 >> 5) & 1) && zmm_ok;
    return f;
}
