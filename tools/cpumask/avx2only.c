// LD_PRELOAD shim: hide AVX-512, AVX-VNNI and AMX from CPUID using Linux CPUID faulting (arch_prctl ARCH_SET_CPUID).
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <ucontext.h>
#include <asm/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cpuid.h>
#include <stdio.h>
#include <stdlib.h>
#include <dlfcn.h>
#include <errno.h>

static struct sigaction previous;
static int hide_avx2;   // CPUMASK_HIDE_AVX2=1: hide AVX2 and FMA as well (to check the mask on an AVX2-only machine)
static int report;      // CPUMASK_REPORT=1: say on stderr what the first masked leaf-7 CPUID returned
typedef int (*sigaction_fn)(int, const struct sigaction*, struct sigaction*);
static sigaction_fn real_sigaction;
static int installed;

static void on_segv(int sig, siginfo_t* info, void* context) {
    ucontext_t* uc = (ucontext_t*)context;
    unsigned char* rip = (unsigned char*)uc->uc_mcontext.gregs[REG_RIP];
    if (rip[0] == 0x0f && rip[1] == 0xa2) {
        unsigned leaf = (unsigned)uc->uc_mcontext.gregs[REG_RAX], sub = (unsigned)uc->uc_mcontext.gregs[REG_RCX];
        unsigned a, b, c, d;
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
        __cpuid_count(leaf, sub, a, b, c, d);
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
        if (leaf == 7 && sub == 0) {
            b &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31)); // avx512 f,dq,ifma,pf,er,cd,bw,vl
            c &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14)); // vbmi, vbmi2, vnni, bitalg, vpopcntdq
            d &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25)); // 4vnniw,4fmaps,vp2intersect, amx bf16, fp16, tile, int8
        }
        if (leaf == 7 && sub == 0 && hide_avx2) b &= ~(1u << 5);                         // avx2
        if (leaf == 1 && hide_avx2) c &= ~(1u << 12);                                    // fma
        if (leaf == 7 && sub == 0 && report) {
            char line[160];
            int n = snprintf(line, sizeof line, "avx2only: CPUID leaf 7 trapped, ebx now 0x%08x ecx 0x%08x\n", b, c);
            if (write(2, line, (size_t)n) < 0) { }
            report = 0;
        }
        if (leaf == 7 && sub == 1) { a &= ~((1u << 4) | (1u << 5) | (1u << 23)); d &= ~((1u << 4) | (1u << 5) | (1u << 19)); } // avx-vnni, avx512bf16, avx-ifma; vnni-int8, ne-convert, avx10
        if (leaf == 0x24) { a = b = c = d = 0; }
        uc->uc_mcontext.gregs[REG_RAX] = a; uc->uc_mcontext.gregs[REG_RBX] = b;
        uc->uc_mcontext.gregs[REG_RCX] = c; uc->uc_mcontext.gregs[REG_RDX] = d;
        uc->uc_mcontext.gregs[REG_RIP] += 2;
        return;
    }
    if (previous.sa_flags & SA_SIGINFO) previous.sa_sigaction(sig, info, context);
    else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) previous.sa_handler(sig);
    else { signal(sig, SIG_DFL); }
}

__attribute__((constructor)) static void install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    real_sigaction(SIGSEGV, &sa, &previous);
    installed = 1;
    const char* h = getenv("CPUMASK_HIDE_AVX2");
    const char* r = getenv("CPUMASK_REPORT");
    hide_avx2 = h && strcmp(h, "1") == 0;
    report = r && strcmp(r, "1") == 0;
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
        // Without CPUID faulting nothing can be hidden: refuse rather than run with the real features.
        fprintf(stderr, "avx2only: cannot mask CPUID: arch_prctl(ARCH_SET_CPUID) failed (%s); this CPU, hypervisor "
                        "or kernel lacks cpuid_fault (see the flags in /proc/cpuinfo); not running unmasked\n",
                strerror(errno));
        _exit(125);
    }
}

// Others (the .NET runtime) installing a SIGSEGV handler get chained behind ours, so CPUID faults are always ours.
int sigaction(int sig, const struct sigaction* act, struct sigaction* oact) {
    if (!real_sigaction) real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    if (sig == SIGSEGV && installed) {
        if (oact) *oact = previous;
        if (act) previous = *act;
        return 0;
    }
    return real_sigaction(sig, act, oact);
}
