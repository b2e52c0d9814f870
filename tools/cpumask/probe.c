// Prints the CPUID feature bits the mask changes, so tools/cpumask/check.sh can see the mask take effect.
#include <cpuid.h>
#include <stdio.h>

int main(void) {
    unsigned a, b, c, d, c1;
    __cpuid_count(1, 0, a, b, c1, d);
    __cpuid_count(7, 0, a, b, c, d);
    printf("avx2=%u fma=%u avx512f=%u avx512bw=%u avx512vnni=%u\n", (b >> 5) & 1, (c1 >> 12) & 1, (b >> 16) & 1,
           (b >> 30) & 1, (c >> 11) & 1);
    return 0;
}
